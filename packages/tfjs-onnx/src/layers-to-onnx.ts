import onnxProto from "onnx-proto";
import { ConversionError } from "./conversion-error.js";
import type { LayerJson, LayersModel } from "./read-layers-model.js";

const { onnx } = onnxProto;

export interface ConvertOptions {
  /** Name of the graph input, [n,C,h,w] float32. Default "image" (the upscaler contract). */
  inputName?: string;
  /** Name of the graph output, [n,C',h',w'] float32. Default "upscaled". */
  outputName?: string;
  /** Written into the model's doc_string, e.g. where the weights came from. */
  docString?: string;
}

/** Bumped whenever the emitted graph changes, so caches of converted models know they are stale. */
export const CONVERTER_VERSION = "1";
// Resize with a scales input and Sum are stable at opset 13, which every onnxruntime since 1.7 runs.
const OPSET = 13;
const IR_VERSION = 8;

const { AttributeType } = onnx.AttributeProto;
type Attribute = ReturnType<typeof onnx.AttributeProto.create>;

function ints(name: string, values: number[]) {
  return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: values });
}
function int(name: string, value: number) {
  return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
}
function str(name: string, value: string) {
  return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: Buffer.from(value) });
}

/** Keras options that only matter for training; everything else a layer carries must be understood or refused. */
const TRAINING_ONLY = new Set([
  "name",
  "trainable",
  "dtype",
  "kernel_initializer",
  "bias_initializer",
  "kernel_regularizer",
  "bias_regularizer",
  "activity_regularizer",
  "kernel_constraint",
  "bias_constraint",
]);

/** Per tensor: its name in the graph and its channel count (every tensor here is rank 4). */
interface Tensor {
  name: string;
  channels: number;
}

class GraphBuilder {
  readonly nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  readonly initializers: ReturnType<typeof onnx.TensorProto.create>[] = [];

  node(op: string, inputs: string[], output: string, attributes: Attribute[] = []): void {
    this.nodes.push(onnx.NodeProto.create({ opType: op, name: output, input: inputs, output: [output], attribute: attributes }));
  }

  constant(name: string, dims: number[], data: Float32Array): string {
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // ONNX raw_data is little-endian, as is Node
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData }));
    return name;
  }
}

interface LayerContext {
  layer: LayerJson;
  inputs: Tensor[];
  /** The name this layer's output must have in the graph. */
  output: string;
  graph: GraphBuilder;
  weight(kind: "kernel" | "bias"): { shape: number[]; data: Float32Array };
}

type Translator = (ctx: LayerContext) => number;

function refuse(layer: LayerJson, message: string): never {
  throw new ConversionError(message, layer.name);
}

function checkOptions(layer: LayerJson, known: string[]): void {
  for (const key of Object.keys(layer.config)) {
    if (!TRAINING_ONLY.has(key) && !known.includes(key)) refuse(layer, `${layer.class_name} option "${key}" is not supported`);
  }
  const dtype = layer.config.dtype;
  if (dtype !== undefined && dtype !== "float32") refuse(layer, `dtype ${String(dtype)} is not supported (float32 only)`);
}

function pair(layer: LayerJson, key: string): [number, number] {
  const value = layer.config[key];
  const v = typeof value === "number" ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x > 0)) {
    refuse(layer, `${key} ${JSON.stringify(value)} is not a pair of positive integers`);
  }
  return [v[0], v[1]];
}

function channelsLast(layer: LayerJson): void {
  const format = layer.config.data_format;
  if (format !== undefined && format !== "channels_last")
    refuse(layer, `data_format "${String(format)}" is not supported (channels_last only)`);
}

const ACTIVATIONS: Record<string, string | null> = { linear: null, relu: "Relu", sigmoid: "Sigmoid", tanh: "Tanh" };

/** Emits `activation` (a Keras activation name) from `input` to `output`; returns false for "linear". */
function activation(ctx: LayerContext, name: unknown, input: string, output: string): boolean {
  const op = typeof name === "string" ? ACTIVATIONS[name] : undefined;
  if (op === undefined) refuse(ctx.layer, `activation ${JSON.stringify(name)} is not supported (${Object.keys(ACTIVATIONS).join(", ")})`);
  if (op === null) return false;
  ctx.graph.node(op, [input], output);
  return true;
}

// Keras NHWC axes -> ONNX NCHW axes for rank-4 tensors.
const NHWC_TO_NCHW: Record<number, number> = { 0: 0, 1: 2, 2: 3, 3: 1, [-1]: 1, [-2]: 3, [-3]: 2, [-4]: 0 };

const TRANSLATORS: Record<string, Translator> = {
  Conv2D(ctx) {
    const { layer } = ctx;
    const c = layer.config;
    checkOptions(layer, [
      "filters",
      "kernel_size",
      "strides",
      "padding",
      "data_format",
      "dilation_rate",
      "groups",
      "activation",
      "use_bias",
    ]);
    channelsLast(layer);
    const [kh, kw] = pair(layer, "kernel_size");
    const strides = pair(layer, "strides");
    const dilations = pair(layer, "dilation_rate");
    const groups = (c.groups as number | undefined) ?? 1;
    const filters = c.filters as number;
    const inChannels = ctx.inputs[0].channels;
    if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || filters % groups !== 0) {
      refuse(layer, `groups ${String(groups)} does not divide ${inChannels} input and ${filters} output channels`);
    }
    const perGroup = inChannels / groups;
    const kernel = ctx.weight("kernel");
    if (kernel.shape.join() !== [kh, kw, perGroup, filters].join()) {
      refuse(layer, `kernel has shape [${kernel.shape}], expected [${[kh, kw, perGroup, filters]}]`);
    }
    // TF stores kernels as [kh, kw, in, out]; ONNX Conv wants [out, in, kh, kw].
    const oihw = new Float32Array(kernel.data.length);
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < perGroup; i++)
          for (let o = 0; o < filters; o++)
            oihw[((o * perGroup + i) * kh + y) * kw + x] = kernel.data[((y * kw + x) * perGroup + i) * filters + o];
    const inputs = [ctx.inputs[0].name, ctx.graph.constant(`${layer.name}/kernel`, [filters, perGroup, kh, kw], oihw)];
    if (c.use_bias !== false) {
      const bias = ctx.weight("bias");
      if (bias.shape.join() !== String(filters)) refuse(layer, `bias has shape [${bias.shape}], expected [${filters}]`);
      inputs.push(ctx.graph.constant(`${layer.name}/bias`, [filters], bias.data));
    }
    const attributes = [ints("kernel_shape", [kh, kw]), ints("strides", strides), ints("dilations", dilations), int("group", groups)];
    if (c.padding === "same") {
      if (strides[0] === 1 && strides[1] === 1) {
        // TF pads the odd pixel at the end; explicit pads keep that exact.
        const [th, tw] = [dilations[0] * (kh - 1), dilations[1] * (kw - 1)];
        attributes.push(ints("pads", [th >> 1, tw >> 1, th - (th >> 1), tw - (tw >> 1)]));
      } else {
        // With strides the padding depends on the input size; SAME_UPPER is TF's rule.
        attributes.push(str("auto_pad", "SAME_UPPER"));
      }
    } else if (c.padding !== "valid") {
      refuse(layer, `padding ${JSON.stringify(c.padding)} is not supported (same, valid)`);
    }
    const convOut = `${ctx.output}/conv`;
    const activated = activation(ctx, c.activation ?? "linear", convOut, ctx.output);
    ctx.graph.node("Conv", inputs, activated ? convOut : ctx.output, attributes);
    return filters;
  },

  Activation(ctx) {
    checkOptions(ctx.layer, ["activation"]);
    if (!activation(ctx, ctx.layer.config.activation, ctx.inputs[0].name, ctx.output))
      ctx.graph.node("Identity", [ctx.inputs[0].name], ctx.output);
    return ctx.inputs[0].channels;
  },

  Concatenate(ctx) {
    checkOptions(ctx.layer, ["axis"]);
    const axis = NHWC_TO_NCHW[(ctx.layer.config.axis as number | undefined) ?? -1];
    if (axis === undefined) refuse(ctx.layer, `axis ${JSON.stringify(ctx.layer.config.axis)} is not an axis of a rank-4 tensor`);
    ctx.graph.node(
      "Concat",
      ctx.inputs.map((t) => t.name),
      ctx.output,
      [int("axis", axis)],
    );
    return axis === 1 ? ctx.inputs.reduce((sum, t) => sum + t.channels, 0) : ctx.inputs[0].channels;
  },

  Add(ctx) {
    checkOptions(ctx.layer, []);
    if (ctx.inputs.some((t) => t.channels !== ctx.inputs[0].channels)) refuse(ctx.layer, "adds tensors with different channel counts");
    ctx.graph.node(
      ctx.inputs.length === 2 ? "Add" : "Sum",
      ctx.inputs.map((t) => t.name),
      ctx.output,
    );
    return ctx.inputs[0].channels;
  },

  UpSampling2D(ctx) {
    const { layer } = ctx;
    checkOptions(layer, ["size", "data_format", "interpolation"]);
    channelsLast(layer);
    const [sh, sw] = pair(layer, "size");
    const interpolation = layer.config.interpolation ?? "nearest";
    if (interpolation !== "nearest") refuse(layer, `interpolation ${JSON.stringify(interpolation)} is not supported (nearest only)`);
    const scales = ctx.graph.constant(`${layer.name}/scales`, [4], new Float32Array([1, 1, sh, sw]));
    // asymmetric + floor maps output pixel i to input pixel floor(i / s): each pixel repeated s times, as Keras does.
    ctx.graph.node("Resize", [ctx.inputs[0].name, "", scales], ctx.output, [
      str("mode", "nearest"),
      str("coordinate_transformation_mode", "asymmetric"),
      str("nearest_mode", "floor"),
    ]);
    return ctx.inputs[0].channels;
  },
};

function inputChannels(layer: LayerJson): number {
  checkOptions(layer, ["batch_input_shape", "batch_shape", "sparse", "ragged"]);
  if (layer.config.sparse === true || layer.config.ragged === true) refuse(layer, "sparse and ragged inputs are not supported");
  const shape = (layer.config.batch_input_shape ?? layer.config.batch_shape) as (number | null)[] | undefined;
  const channels = shape?.[3];
  if (shape?.length !== 4 || typeof channels !== "number") refuse(layer, `input shape ${JSON.stringify(shape)} is not [n, h, w, channels]`);
  return channels;
}

/**
 * Translates a single-input, single-output TF.js layers model (channels-last) into an ONNX model in NCHW layout:
 * `inputName` [n,C,h,w] -> `outputName` [n,C',h',w'], with the same numbers as the TF.js model.
 */
export function layersToOnnx(model: LayersModel, options: ConvertOptions = {}): Uint8Array {
  const { inputName = "image", outputName = "upscaled" } = options;
  const { config } = model.topology;
  if (!config.input_layers || !config.output_layers) {
    throw new ConversionError("the topology has no input_layers/output_layers; only functional models are supported");
  }
  if (config.input_layers.length !== 1 || config.output_layers.length !== 1) {
    throw new ConversionError(
      `the model has ${config.input_layers.length} inputs and ${config.output_layers.length} outputs; one of each is supported`,
    );
  }
  const byName = new Map(config.layers.map((l) => [l.name, l]));
  const inputLayer = config.input_layers[0][0];
  const outputLayer = config.output_layers[0][0];
  const graph = new GraphBuilder();
  const done = new Map<string, Tensor>();
  const visiting = new Set<string>();

  // Depth-first from the output, so only layers the output depends on are emitted, each after its inputs.
  const visit = (name: string): Tensor => {
    const seen = done.get(name);
    if (seen) return seen;
    const layer = byName.get(name);
    if (!layer) throw new ConversionError(`the topology refers to layer "${name}", which it does not define`);
    if (visiting.has(name)) refuse(layer, "is part of a cycle");
    visiting.add(name);
    let tensor: Tensor;
    if (name === inputLayer) {
      if (layer.class_name !== "InputLayer") refuse(layer, `the model input is a ${layer.class_name}, not an InputLayer`);
      tensor = { name: inputName, channels: inputChannels(layer) };
    } else {
      const translate = Object.hasOwn(TRANSLATORS, layer.class_name) ? TRANSLATORS[layer.class_name] : undefined;
      if (!translate) refuse(layer, `layer type ${layer.class_name} is not supported (${Object.keys(TRANSLATORS).join(", ")})`);
      if (layer.inbound_nodes.length !== 1) refuse(layer, `is called ${layer.inbound_nodes.length} times; shared layers are not supported`);
      const inputs = layer.inbound_nodes[0].map(([from, node, index]) => {
        if (node !== 0 || index !== 0)
          refuse(layer, `reads output ${node}:${index} of "${from}"; only single-call, single-output layers are supported`);
        return visit(from);
      });
      const output = name === outputLayer ? outputName : name;
      const weight = (kind: "kernel" | "bias") => {
        const w = model.weights.get(`${name}/${kind}`);
        if (!w) refuse(layer, `has no weight "${name}/${kind}" in the weights manifest`);
        return w;
      };
      tensor = { name: output, channels: translate({ layer, inputs, output, graph, weight }) };
    }
    visiting.delete(name);
    done.set(name, tensor);
    return tensor;
  };
  const output = visit(outputLayer);
  if (output.name !== outputName) throw new ConversionError("the model's output is its input; there is nothing to convert");
  const input = done.get(inputLayer);
  if (!input) throw new ConversionError("the model's output does not depend on its input");

  const valueInfo = (name: string, dims: (number | string)[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
  const modelProto = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "@unclip/tfjs-onnx",
    producerVersion: CONVERTER_VERSION,
    docString: options.docString ?? "",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: {
      name: config.name ?? "model",
      node: graph.nodes,
      initializer: graph.initializers,
      input: [valueInfo(inputName, ["n", input.channels, "h", "w"])],
      output: [valueInfo(outputName, ["n", output.channels, "out_h", "out_w"])],
    },
  });
  return onnx.ModelProto.encode(modelProto).finish();
}
