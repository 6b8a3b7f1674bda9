import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { ConfigError } from './errors.ts';
import { createLogger, type LoggerOptions } from './logger.ts';

function capture(options: Partial<LoggerOptions> = {}) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ name: 'proxy', stream, ...options });
  const lines = () => chunks.join('').split('\n').filter(Boolean);
  const records = () => lines().map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, stream, chunks, lines, records };
}

describe('createLogger', () => {
  test('writes one parseable JSON line with time, level, name, msg and the fields', () => {
    const { logger, chunks, records } = capture();
    logger.info('listening', { port: 8080, tls: false });
    assert.equal(chunks.length, 1);
    assert.ok(chunks[0]!.endsWith('}\n'));
    const [record] = records();
    assert.deepEqual(Object.keys(record!), ['time', 'level', 'name', 'msg', 'port', 'tls']);
    assert.deepEqual(
      { ...record, time: undefined },
      {
        time: undefined,
        level: 'info',
        name: 'proxy',
        msg: 'listening',
        port: 8080,
        tls: false,
      },
    );
    assert.equal(new Date(record!.time as string).toISOString(), record!.time);
  });

  test('a level below the logger level writes nothing and reads no field', () => {
    const { logger, chunks } = capture({ level: 'warn' });
    let reads = 0;
    const fields = {
      get expensive() {
        reads++;
        return 1;
      },
    };
    logger.debug('noise', fields);
    logger.info('noise', fields);
    assert.equal(chunks.length, 0);
    assert.equal(reads, 0);
  });

  test('SWITCHYARD_LOG_LEVEL in the given env overrides the level option', () => {
    const { logger, records } = capture({ level: 'error', env: { SWITCHYARD_LOG_LEVEL: 'debug' } });
    logger.debug('detail');
    assert.equal(records()[0]?.level, 'debug');
  });

  test('an unknown level is rejected when the logger is created', () => {
    assert.throws(
      () => createLogger({ name: 'proxy', env: { SWITCHYARD_LOG_LEVEL: 'verbose' } }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          'logger: SWITCHYARD_LOG_LEVEL "verbose" is not allowed: expected one of debug, info, warn, error',
    );
  });

  test('an Error field is written as type, message, code and stack', () => {
    const { logger, records } = capture();
    const error = Object.assign(new TypeError('connect refused'), { code: 'ECONNREFUSED' });
    logger.error('upstream down', { error });
    const written = records()[0]?.error as Record<string, unknown>;
    assert.equal(written.type, 'TypeError');
    assert.equal(written.message, 'connect refused');
    assert.equal(written.code, 'ECONNREFUSED');
    assert.match(written.stack as string, /TypeError: connect refused/);
  });

  test('an Error cause is written nested under the error', () => {
    const { logger, records } = capture();
    logger.error('config reload failed', {
      error: new Error('reload', { cause: new RangeError('too big') }),
    });
    const { cause } = records()[0]!.error as { cause: Record<string, unknown> };
    assert.equal(cause.type, 'RangeError');
    assert.equal(cause.message, 'too big');
  });

  test('a circular field is replaced and the rest of the line is written', () => {
    const { logger, records } = capture();
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    assert.doesNotThrow(() => logger.warn('odd', { loop, port: 1 }));
    const [record] = records();
    assert.match(record?.loop as string, /^\[unserializable: /);
    assert.equal(record?.port, 1);
  });

  test('a BigInt field is written as a decimal string', () => {
    const { logger, records } = capture();
    logger.info('bytes', { total: 2n ** 64n });
    assert.equal(records()[0]?.total, '18446744073709551616');
  });

  test('a field with a throwing getter is replaced, not thrown', () => {
    const { logger, records } = capture();
    const fields = {
      get broken(): never {
        throw new Error('boom');
      },
    };
    assert.doesNotThrow(() => logger.info('still logged', fields));
    assert.equal(records()[0]?.broken, '[unserializable: boom]');
  });

  test('a field named like a reserved key does not overwrite it', () => {
    const { logger, records } = capture();
    logger.info('ok', { level: 'fake', msg: 'fake' });
    const [record] = records();
    assert.equal(record?.level, 'info');
    assert.equal(record?.msg, 'ok');
    assert.equal(record?.['field.level'], 'fake');
  });

  test('child bindings are merged into every line and call fields win over them', () => {
    const { logger, records } = capture();
    const child = logger.child({ component: 'balancer', upstream: 'a' }).child({ attempt: 1 });
    child.info('picked', { upstream: 'b' });
    const [record] = records();
    assert.equal(record?.component, 'balancer');
    assert.equal(record?.attempt, 1);
    assert.equal(record?.upstream, 'b');
  });

  test('a call on an ended stream neither throws nor writes', () => {
    const { logger, stream, chunks } = capture();
    stream.end();
    assert.doesNotThrow(() => logger.error('after shutdown'));
    assert.equal(chunks.length, 0);
  });
});
