import net from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFaultProxy, type FaultProxy } from "../src/fault-proxy.js";

/** A real TCP server that answers every chunk with "echo:<chunk>"; sockets holds both ends, for cleanup. */
let target: net.Server;
let targetPort: number;
let proxy: FaultProxy | undefined;
const sockets: net.Socket[] = [];

beforeEach(async () => {
  target = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => undefined).on("data", (d) => s.write(`echo:${d.toString()}`));
  });
  target.listen(0, "127.0.0.1");
  await once(target, "listening");
  targetPort = (target.address() as net.AddressInfo).port;
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await proxy?.close();
  proxy = undefined;
  await new Promise((resolve) => target.close(resolve));
});

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: "127.0.0.1", port });
  sockets.push(s);
  await once(s, "connect");
  return s;
}

/** The next reply on the socket, or "timeout" after ms, or "closed" when the connection ends. */
function reply(s: net.Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const done = (v: string) => {
      clearTimeout(timer);
      s.off("data", onData).off("close", onClose).off("error", onClose);
      resolve(v);
    };
    const onData = (d: Buffer) => done(d.toString());
    const onClose = () => done("closed");
    const timer = setTimeout(() => done("timeout"), ms);
    s.on("data", onData).on("close", onClose).on("error", onClose);
  });
}

async function ask(s: net.Socket, text: string, ms = 2_000): Promise<string> {
  const answer = reply(s, ms);
  s.write(text);
  return answer;
}

describe("startFaultProxy", () => {
  it("passes bytes both ways to the target", async () => {
    proxy = await startFaultProxy({ targetPort });
    expect(proxy.endpoint).toBe(`http://127.0.0.1:${String(proxy.port)}`);
    const s = await connect(proxy.port);
    expect(await ask(s, "a")).toBe("echo:a");
    expect(await ask(s, "b")).toBe("echo:b");
    expect(proxy.accepted).toBe(1);
  });

  it("stalls: accepts and reads new connections but never answers, and silences open ones", async () => {
    proxy = await startFaultProxy({ targetPort });
    const open = await connect(proxy.port);
    expect(await ask(open, "before")).toBe("echo:before");
    proxy.setMode("stall");
    expect(proxy.mode).toBe("stall");
    expect(await ask(open, "during", 500)).toBe("timeout");
    const fresh = await connect(proxy.port); // the TCP handshake still completes
    expect(await ask(fresh, "hello", 500)).toBe("timeout");
    expect(fresh.destroyed).toBe(false);
  });

  it("resets the connections a stall held when it ends, and passes new ones again", async () => {
    proxy = await startFaultProxy({ targetPort, mode: "stall" });
    const held = await connect(proxy.port);
    const heldEnds = reply(held, 2_000);
    held.write("x");
    await sleep(100);
    proxy.setMode("pass");
    expect(await heldEnds).toBe("closed");
    const s = await connect(proxy.port);
    expect(await ask(s, "again")).toBe("echo:again");
  });

  it("refuses new connections and keeps open ones passing", async () => {
    proxy = await startFaultProxy({ targetPort });
    const open = await connect(proxy.port);
    proxy.setMode("refuse");
    const refused = net.connect({ host: "127.0.0.1", port: proxy.port });
    sockets.push(refused);
    const ended = await new Promise<string>((resolve) => {
      refused.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
      refused.on("close", () => resolve("closed"));
      refused.on("data", () => resolve("answered"));
    });
    expect(["ECONNRESET", "closed"]).toContain(ended);
    expect(await ask(open, "still")).toBe("echo:still");
  });

  it("closes the client side when the target is down", async () => {
    await new Promise((resolve) => target.close(resolve));
    target = net.createServer(); // afterEach closes this one
    proxy = await startFaultProxy({ targetPort });
    const s = await connect(proxy.port);
    expect(await ask(s, "anyone?", 2_000)).toBe("closed");
  });

  it("close() ends every connection and is idempotent", async () => {
    proxy = await startFaultProxy({ targetPort });
    const s = await connect(proxy.port);
    const ends = reply(s, 2_000);
    await Promise.all([proxy.close(), proxy.close()]);
    expect(await ends).toBe("closed");
    await expect(connect(proxy.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
