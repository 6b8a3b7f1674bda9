export { readSampleConfig, type SampleConfig, sampleConfigSchema } from './config.ts';
export { EchoServer } from './echo-server.ts';
export { sampleCatalog } from './metrics.ts';
export { TrafficGenerator } from './traffic.ts';
