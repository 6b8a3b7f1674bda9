import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { validateAnswer } from './answer.ts';
import { ReceiverOptionError } from './errors.ts';

test('rejects a partial success with a negative rejected count', () => {
  assert.throws(() => validateAnswer({ kind: 'partial-success', rejected: -1 }), ReceiverOptionError);
});

test('rejects an error answer with a negative retry delay', () => {
  assert.throws(
    () => validateAnswer({ kind: 'error', code: status.UNAVAILABLE, retryDelayMs: -5 }),
    (error: unknown) => error instanceof ReceiverOptionError && error.option === 'answer.retryDelayMs',
  );
});

test('freezes a valid answer so a later edit cannot change what was scripted', () => {
  const answer = { kind: 'error' as const, code: status.UNAVAILABLE };
  const validated = validateAnswer(answer);
  assert.ok(Object.isFrozen(validated));
  assert.notEqual(validated, answer);
});
