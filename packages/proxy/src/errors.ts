import { SwitchyardError } from '@switchyard/telemetry';

/** The config parses but does not hang together (a listener names a pool that does not exist, ...). */
export class ProxyConfigError extends SwitchyardError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('SWY_ERR_PROXY_CONFIG', `proxy config: ${field}: ${message}`);
    this.field = field;
  }
}
