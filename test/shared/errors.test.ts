/** The coded error registry: spelled-out gRPC codes agree with grpc-js, codes are unique. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ERROR_CODES, GrpcCode } from '../../src/shared/errors';

test('GrpcCode matches grpc-js status numbers', () => {
  for (const [name, code] of Object.entries(GrpcCode)) {
    assert.equal(code, status[name as keyof typeof status], name);
  }
});

test('every ApiError code is unique and maps to a known gRPC status', () => {
  const codes = Object.values(ERROR_CODES).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length);
  for (const e of Object.values(ERROR_CODES)) assert.ok(Object.values(GrpcCode).includes(e.grpc));
});
