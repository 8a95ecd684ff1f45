import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { threadingOptions } from "../src/session-threading.js";

describe("threadingOptions", () => {
  it("gives each session every core the process may run on, with idle threads asleep, unless told otherwise", () => {
    expect(threadingOptions({})).toEqual({
      intraOpNumThreads: availableParallelism(),
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
    // 0 is the workers' "unset" (UNCLIP_INTRA_OP_THREADS=0).
    expect(threadingOptions({ intraOpThreads: 0 }).intraOpNumThreads).toBe(availableParallelism());
    expect(threadingOptions({ intraOpThreads: 3, spinning: true })).toEqual({
      intraOpNumThreads: 3,
      extra: { session: { intra_op: { allow_spinning: "1" } } },
    });
  });
});
