import { create } from "@bufbuild/protobuf";
import { DType, TensorSchema, type Tensor } from "./gen/farm/v1/tensor_pb.js";

/** A host-side tensor: a typed array plus its shape. */
export type HostTensor =
  | { dtype: "float32"; shape: number[]; data: Float32Array }
  | { dtype: "int64"; shape: number[]; data: BigInt64Array }
  | { dtype: "uint8"; shape: number[]; data: Uint8Array };

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Typed arrays are host-endian; the wire format is little-endian, so big-endian hosts swap bytes. */
function toLittleEndianBytes(view: ArrayBufferView, width: number): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
  if (!littleEndian && width > 1) {
    for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
  }
  return bytes;
}

export function encodeTensor(t: HostTensor): Tensor {
  const n = elementCount(t.shape);
  if (t.data.length !== n) throw new RangeError(`tensor data has ${t.data.length} elements, shape [${t.shape}] needs ${n}`);
  const dtype = t.dtype === "float32" ? DType.DTYPE_FLOAT32 : t.dtype === "int64" ? DType.DTYPE_INT64 : DType.DTYPE_UINT8;
  const width = t.data.BYTES_PER_ELEMENT;
  return create(TensorSchema, { shape: t.shape.map(BigInt), dtype, data: toLittleEndianBytes(t.data, width) });
}

export function decodeTensor(t: Tensor): HostTensor {
  const shape = t.shape.map(Number);
  const n = elementCount(shape);
  const width = t.dtype === DType.DTYPE_FLOAT32 ? 4 : t.dtype === DType.DTYPE_INT64 ? 8 : t.dtype === DType.DTYPE_UINT8 ? 1 : 0;
  if (width === 0) throw new TypeError(`unsupported tensor dtype ${DType[t.dtype] ?? t.dtype}`);
  if (t.data.byteLength !== n * width) {
    throw new RangeError(`tensor holds ${t.data.byteLength} bytes, shape [${shape}] of ${DType[t.dtype]} needs ${n * width}`);
  }
  // Copy into an aligned buffer: protobuf bytes may sit at any offset of a larger buffer.
  const bytes = toLittleEndianBytes(t.data, width);
  if (t.dtype === DType.DTYPE_FLOAT32) return { dtype: "float32", shape, data: new Float32Array(bytes.buffer) };
  if (t.dtype === DType.DTYPE_INT64) return { dtype: "int64", shape, data: new BigInt64Array(bytes.buffer) };
  return { dtype: "uint8", shape, data: bytes };
}

/** Decodes a tensor that must be float32, e.g. an image embedding. */
export function decodeFloat32(t: Tensor): { shape: number[]; data: Float32Array } {
  const host = decodeTensor(t);
  if (host.dtype !== "float32") throw new TypeError(`expected a float32 tensor, got ${host.dtype}`);
  return host;
}
