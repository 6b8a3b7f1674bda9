export {
  checkProxyConfig,
  DEMO_CONFIG,
  type ProxyConfig,
  proxyConfigSchema,
  readProxyConfig,
} from './config.ts';
export { ProxyConfigError } from './errors.ts';
export { proxyCatalog } from './metrics.ts';
export { ProxyServer } from './proxy-server.ts';
