import { Option, type Command } from "commander";
import { create, InterpolateImagesRequestSchema, TransformImageRequestSchema } from "@unclip/protocol";
import { fraction, manipulationFlags, manipulationSettings, uint64, wholeNumber, type ManipulationFlags } from "./cli-args.js";
import { withClient, type Gateway } from "./command-context.js";
import { follow, followFlags, includeBytesFlag, outputOptions, readInput, type FollowFlags } from "./job-commands.js";

type Flags = ManipulationFlags & FollowFlags & { seed: bigint };
type InterpolateFlags = Flags & { frames: number; invert?: boolean };
type TransformFlags = Flags & { images: number; from: string; strength?: number; invert?: boolean };

const seedOption = (what: string): Option =>
  new Option("--seed <seed>", `${what} (0 = random)`).argParser(uint64("--seed")).default(0n, "0");

/** unclip interpolate and transform: the image manipulations of DALL·E 2 §3 (InterpolateImages, TransformImage). */
export function registerManipulationCommands(program: Command, gateway: Gateway): void {
  followFlags(
    includeBytesFlag(
      manipulationFlags(
        program
          .command("interpolate")
          .description(
            "frames between two images (InterpolateImages): slerp between their CLIP embeddings, every frame decoded " +
              "with DDIM from one starting noise; frame 0 is <imageA>, the last <imageB>",
          )
          .argument("<imageA>")
          .argument("<imageB>")
          .addOption(new Option("--frames <n>", "frames, both ends included (2-16)").argParser(wholeNumber("--frames", 2, 16)).default(8))
          .option("--invert", "start the frames from the slerp of the sources' DDIM inversions, so the ends reproduce them")
          .addOption(seedOption("seed of the starting noise every frame shares; unused with --invert")),
      ),
    ),
  ).action(async (imageA: string, imageB: string, o: InterpolateFlags) => {
    const req = create(InterpolateImagesRequestSchema, {
      imageA: await readInput(imageA),
      imageB: await readInput(imageB),
      frames: o.frames,
      invertSources: o.invert ?? false,
      seed: o.seed,
      ...manipulationSettings(o),
      ...outputOptions(o),
    });
    await withClient(gateway, (client) => follow(gateway, client, () => client.interpolateImages(req), o));
  });

  followFlags(
    includeBytesFlag(
      manipulationFlags(
        program
          .command("transform")
          .description(
            "change an image towards a caption (TransformImage, a text diff): its CLIP embedding rotated towards " +
              "text(<to>) - text(--from), decoded with DDIM",
          )
          .argument("<image>")
          .argument("<to>", 'what the image should become, e.g. "a blue" (on shapes-v1, "a <colour>" names the object\'s colour)')
          .addOption(new Option("--from <caption>", 'what the image is now, e.g. "a red"').default("", "the empty caption"))
          .addOption(
            new Option(
              "--strength <s>",
              "how far to move, 0-1: the slerp fraction towards the text diff (default: the farm's, 0.6)",
            ).argParser(fraction("--strength")),
          )
          .option("--invert", "start from the image's DDIM inversion (keeps its layout pixel for pixel; one image only)")
          .option("--no-invert", "start from the seed's noise (the farm's default)")
          .addOption(new Option("-n, --images <n>", "number of images (1-8)").argParser(wholeNumber("--images", 1, 8)).default(1))
          .addOption(seedOption("seed of the first image; image i uses seed + i")),
      ),
    ),
  ).action(async (image: string, to: string, o: TransformFlags) => {
    const req = create(TransformImageRequestSchema, {
      image: await readInput(image),
      toCaption: to,
      fromCaption: o.from,
      strength: o.strength,
      invertSource: o.invert,
      numImages: o.images,
      seed: o.seed,
      ...manipulationSettings(o),
      ...outputOptions(o),
    });
    await withClient(gateway, (client) => follow(gateway, client, () => client.transformImage(req), o));
  });
}
