import { Tensor, type InferenceSession } from "onnxruntime-node";
import type { Bundle } from "./bundle.js";
import { resizeImage, type RgbImage } from "./image-io.js";
import { BundleError, type ClipSection } from "./manifest.js";

/** The variations stage: CLIP image encoder on images resized to clip.imageSize and normalised with its mean/std. */
export class ImageToEmbedding {
  private readonly imageEncoder: InferenceSession;
  private readonly clip: ClipSection;

  constructor(readonly bundle: Bundle) {
    if (!bundle.sessions.imageEncoder || !bundle.manifest.clip) {
      throw new BundleError('ImageToEmbedding needs the "clip" section with an imageEncoder', bundle.dir);
    }
    this.imageEncoder = bundle.sessions.imageEncoder;
    this.clip = bundle.manifest.clip;
  }

  async run(images: readonly RgbImage[]): Promise<Float32Array[]> {
    const n = images.length;
    if (n === 0) return [];
    const { imageSize: S, imageMean, imageStd, embedDim: D } = this.clip;
    const plane = S * S;
    const pixels = new Float32Array(n * 3 * plane);
    const resized = await Promise.all(images.map((image) => resizeImage(image, S)));
    resized.forEach((image, b) => {
      for (let c = 0; c < 3; c++) {
        const offset = (b * 3 + c) * plane;
        const scale = 1 / (255 * imageStd[c]);
        const shift = imageMean[c] / imageStd[c];
        for (let p = 0; p < plane; p++) pixels[offset + p] = image.data[3 * p + c] * scale - shift;
      }
    });
    const result = await this.imageEncoder.run({ pixel_values: new Tensor("float32", pixels, [n, 3, S, S]) });
    const embeds = result.image_embeds.data as Float32Array;
    return images.map((_, b) => embeds.slice(b * D, (b + 1) * D));
  }
}
