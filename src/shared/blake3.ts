/**
 * BLAKE3-256 (the program id, client-api.md §2.1): the napi-rs binding where its prebuilt binary
 * exists for this platform (Rust `blake3` with SIMD: ~2.4 GB/s on the bench machine), else hash-wasm
 * (~0.4 GB/s). Both give the same digest; the binding ships as an npm optional dependency, so a
 * platform without one silently falls back instead of failing to install.
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
    const native = await import('@napi-rs/blake-hash');
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
