export * from './catalog.ts';
export * from './errors.ts';
export * from './naming.ts';
export * from './prometheus-serializer.ts';
export * from './recorder.ts';
