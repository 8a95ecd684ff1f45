// Defaults of the image manipulations (InterpolateImages, TransformImage), in a module of their own so that the
// gateway, which resolves them into each job's parameters, loads no model code. docs/architecture.md §11 says how
// they were chosen; bench/manipulations-eval.ts measures them.

/**
 * The slerp fraction a transform moves when the request leaves strength unset, and whether it starts from its
 * source's DDIM inversion when it leaves invert_source unset: the best of strengths 0.25, 0.5, 0.6, 0.75 and 1, each
 * from noise and from the inversion, on a DEV set of 96 text diffs (bench/manipulations-eval.ts). 0.6 from noise kept
 * shape and position and took the new colour in 36 of 96, 0.5 in 34; from the inversion at most 22 (the inverted
 * latent of a flat image holds its colours, and the decoder keeps them).
 */
export const DEFAULT_TRANSFORM_STRENGTH = 0.6;
export const DEFAULT_TRANSFORM_INVERSION = false;

/**
 * The decoder's guidance for manipulations when the job asks for none: 1, no classifier-free guidance. Inversion runs
 * without it (an inversion under guidance does not decode back to its source), and a DDIM decode under guidance
 * drifts from the latent it starts from: on shapes-v1 (8 scenes, 25 steps), guidance 3 decodes an inverted source with
 * a mean error of 5–14 levels of 255 instead of 1–2, and from noise got the object's colour, shape and position all
 * right in 0 of 8 images (guidance 1: 8 of 8).
 */
export const MANIPULATION_DECODER_GUIDANCE = 1;
