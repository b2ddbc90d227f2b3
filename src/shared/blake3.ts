/**
 * BLAKE3-256 (the program id `hash_id`; docs/decisions.md, Data plane): the prebuilt Rust binding of
 * @napi-rs/blake-hash (SIMD: ~2.4 GB/s on the bench machine) where it exists, else hash-wasm (~0.4
 * GB/s). Both give the same digest. The binding is an optional dependency on its platform package alone,
 * linux-x64 (glibc): the registry this project installs from has no other platform's build, and the
 * umbrella package would make `npm ci` fail on the missing ones. Other platforms fall back.
 */
export interface Blake3 {
  readonly kind: 'native' | 'wasm';
  /** lowercase hex, 64 chars */
  hex(bytes: Uint8Array): string;
}

let loaded: Promise<Blake3> | undefined;

export function loadBlake3(): Promise<Blake3> {
  return (loaded ??= load());
}

async function load(): Promise<Blake3> {
  try {
    const native = await import('@napi-rs/blake-hash-linux-x64-gnu');
    return { kind: 'native', hex: (bytes) => native.blake3(bytes).toString('hex') };
  } catch {
    // Loaded only on this path: the coordinator's startup never pays for the WASM module.
    const { createBLAKE3 } = await import('hash-wasm');
    const wasm = await createBLAKE3(256);
    return {
      kind: 'wasm',
      hex(bytes) {
        wasm.init();
        wasm.update(bytes);
        return wasm.digest('hex');
      },
    };
  }
}
