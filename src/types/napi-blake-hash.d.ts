/**
 * The prebuilt linux-x64 (glibc) binding of @napi-rs/blake-hash: the package is only the `.node`
 * file, without types. Only what src/shared/blake3.ts uses is declared.
 */
declare module '@napi-rs/blake-hash-linux-x64-gnu' {
  /** BLAKE3 with the default 32-byte output. */
  export function blake3(input: Uint8Array): Buffer;
}
