import { describe, expect, it } from "vitest";
import { create, DType, decodeFloat32, decodeTensor, encodeTensor, fromBinary, TensorSchema, toBinary } from "../src/index.js";

describe("tensor codec", () => {
  it("round-trips float32, int64 and uint8 tensors through protobuf bytes", () => {
    const cases = [
      { dtype: "float32" as const, shape: [2, 3], data: new Float32Array([0, -1.5, 3.25, 1e-7, -0, Number.MAX_VALUE]) },
      { dtype: "int64" as const, shape: [3], data: new BigInt64Array([0n, -9007199254740993n, 2n ** 62n]) },
      { dtype: "uint8" as const, shape: [1, 2, 2], data: new Uint8Array([0, 1, 254, 255]) },
    ];
    for (const t of cases) {
      const wire = toBinary(TensorSchema, encodeTensor(t));
      const back = decodeTensor(fromBinary(TensorSchema, wire));
      expect(back.dtype).toBe(t.dtype);
      expect(back.shape).toEqual(t.shape);
      expect(Array.from(back.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as ArrayLike<unknown>));
    }
  });

  it("writes elements little-endian", () => {
    const t = encodeTensor({ dtype: "float32", shape: [1], data: new Float32Array([1]) });
    expect(Array.from(t.data)).toEqual([0x00, 0x00, 0x80, 0x3f]);
    expect(t.shape).toEqual([1n]);
    expect(t.dtype).toBe(DType.DTYPE_FLOAT32);
  });

  it("decodes bytes that sit at an unaligned offset of a larger buffer", () => {
    const backing = new Uint8Array(9);
    backing.set([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40], 1);
    const t = create(TensorSchema, { shape: [2n], dtype: DType.DTYPE_FLOAT32, data: backing.subarray(1) });
    expect(Array.from(decodeFloat32(t).data)).toEqual([1, 2]);
  });

  it("refuses data whose size does not match the shape, and unknown types", () => {
    expect(() => encodeTensor({ dtype: "float32", shape: [2, 2], data: new Float32Array(3) })).toThrow(/3 elements, shape \[2,2\] needs 4/);
    const short = create(TensorSchema, { shape: [4n], dtype: DType.DTYPE_FLOAT32, data: new Uint8Array(12) });
    expect(() => decodeTensor(short)).toThrow(/holds 12 bytes/);
    expect(() => decodeTensor(create(TensorSchema, { shape: [1n], dtype: DType.DTYPE_FLOAT16, data: new Uint8Array(2) }))).toThrow(
      /unsupported tensor dtype/,
    );
    const ints = encodeTensor({ dtype: "int64", shape: [1], data: new BigInt64Array(1) });
    expect(() => decodeFloat32(ints)).toThrow(/expected a float32 tensor/);
  });
});
