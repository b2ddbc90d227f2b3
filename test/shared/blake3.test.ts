/** The program id hasher: the native binding must give hash-wasm's digest at every chunk boundary. */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blake3 } from 'hash-wasm';
import { loadBlake3 } from '../../src/shared/blake3';

function bindingInstalled(): boolean {
  try {
    require.resolve('@napi-rs/blake-hash-linux-x64-gnu');
    return true;
  } catch {
    return false;
  }
}

describe('loadBlake3', () => {
  it('uses the native binding on this platform and matches hash-wasm across BLAKE3 chunk boundaries', async () => {
    const hasher = await loadBlake3();
    // Where npm installed the binding (linux-x64, glibc), falling back would silently cost 6x hashing
    // speed: it must load.
    if (bindingInstalled()) assert.equal(hasher.kind, 'native');
    for (const size of [0, 1, 63, 64, 1023, 1024, 1025, 2048, 4097, 65_543, (1 << 20) + 1]) {
      const bytes = randomBytes(size);
      assert.equal(hasher.hex(bytes), await blake3(bytes), `size ${size}`);
    }
    // a view into a larger buffer hashes only the view's bytes
    const big = randomBytes(10_000);
    assert.equal(hasher.hex(big.subarray(100, 5_100)), await blake3(big.subarray(100, 5_100)));
    assert.equal(hasher.hex(Buffer.alloc(0)), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });
});
