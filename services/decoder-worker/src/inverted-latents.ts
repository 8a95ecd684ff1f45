/**
 * The DDIM inversions a decoder worker made recently, by source object and steps. The frames of one interpolation
 * (up to 16) arrive in several batches of the decoder's (8 by default), and every frame starts from the same two
 * inversions: kept here, they are computed once per job instead of once per batch. An inversion depends only on its
 * source and embedding, both fixed per source key, so a kept one is exactly what computing it again would give.
 */
export class InvertedLatents {
  private readonly latents = new Map<string, Float32Array>();

  /** `capacity` latents are kept (one is 3·64·64 floats, 48 KiB), the least recently used dropped first. */
  constructor(private readonly capacity = 32) {}

  get(key: string): Float32Array | undefined {
    const latent = this.latents.get(key);
    if (latent) {
      this.latents.delete(key);
      this.latents.set(key, latent);
    }
    return latent;
  }

  set(key: string, latent: Float32Array): void {
    this.latents.delete(key);
    this.latents.set(key, latent);
    while (this.latents.size > this.capacity) this.latents.delete(this.latents.keys().next().value!);
  }
}
