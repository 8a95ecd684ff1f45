import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FarmError, GrpcStatus, ObjectStore, toFarmError } from "../src/index.js";

/** A TCP server that accepts connections and never answers: an object store that hangs instead of failing. */
async function silentServer() {
  const sockets = new Set<net.Socket>();
  const closed: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("data", () => undefined);
    socket.on("close", () => closed.push(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => sockets.size,
    closed: () => closed.length,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function storeAt(port: number, timeoutMs: number) {
  const endpoint = `http://127.0.0.1:${port}`;
  return new ObjectStore({
    endpoint,
    publicEndpoint: endpoint,
    accessKey: "k",
    secretKey: "s",
    bucket: "unclip-test",
    region: "us-east-1",
    timeoutMs,
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe("object store deadlines", () => {
  it("fails a call to a store that never answers at its deadline, as retryable UNAVAILABLE, and drops the connection", async () => {
    const server = await silentServer();
    cleanups.push(server.close);
    const store = storeAt(server.port, 300);
    for (const call of [
      () => store.put("renders/x/0/64.png", new Uint8Array(1000)),
      () => store.get("inputs/x/source.png"),
      () => store.ensureBucket(),
    ]) {
      const started = Date.now();
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(FarmError);
      expect((err as FarmError).code).toBe(GrpcStatus.UNAVAILABLE);
      expect((err as FarmError).retryable).toBe(true);
      expect((err as FarmError).message).toMatch(/did not answer within 300 ms/);
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(2000);
    }
    expect(server.accepted()).toBe(3);
    // The requests were destroyed, not left open on the socket.
    await expect.poll(() => server.closed(), { timeout: 2000 }).toBe(3);
  });

  it("reports a store that refuses connections as retryable UNAVAILABLE at once", async () => {
    const server = await silentServer();
    const port = server.port;
    await server.close();
    const started = Date.now();
    const err = toFarmError(
      await storeAt(port, 5000)
        .put("k", new Uint8Array(1))
        .catch((e: unknown) => e),
    );
    expect(err.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(err.retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
