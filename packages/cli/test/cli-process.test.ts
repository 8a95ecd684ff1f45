import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import {
  create,
  grpcServiceDefinition,
  ImageRefSchema,
  JobEventSchema,
  JobSchema,
  JobState,
  QueuedSchema,
  UnclipService,
  type GenerateRequest,
  type GetJobRequest,
  type InterpolateImagesRequest,
  type Job,
  type JobEvent,
  type TransformImageRequest,
} from "@unclip/protocol";
import { runCli as unclip } from "../src/run-cli.js";

/**
 * The CLI as a process against a stand-in gateway (plaintext and TLS): what a real farm cannot do on cue, such as a
 * job that never ends (Ctrl-C) or a server certificate (the gateway has no TLS yet).
 */

/** The TLS case makes a self-signed certificate with openssl; without it, that case is skipped. */
const HAVE_OPENSSL = spawnSync("openssl", ["version"]).status === 0;
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

const job = (jobId: string, state: JobState, extra: Omit<Partial<Job>, "$typeName" | "$unknown"> = {}) =>
  create(JobSchema, { jobId, state, prompt: "a cat", numImages: 1, size: 64, ...extra });
const event = (jobId: string, e: JobEvent["event"]) => create(JobEventSchema, { jobId, atMs: BigInt(Date.now()), event: e });

const requests: GenerateRequest[] = [];
const cancelled: string[] = [];
const manipulations: (InterpolateImagesRequest | TransformImageRequest)[] = [];

function gatewayStandIn(): Server {
  const server = new Server();
  server.addService(grpcServiceDefinition(UnclipService), {
    getJob: (call: ServerUnaryCall<GetJobRequest, Job>, cb: sendUnaryData<Job>) => {
      const id = call.request.jobId;
      if (id === "missing-job") cb({ code: status.NOT_FOUND, details: `job ${id} does not exist (or has expired)` });
      else
        cb(null, job(id, id.startsWith("failed") ? JobState.FAILED : JobState.SUCCEEDED, { error: id.startsWith("failed") ? "boom" : "" }));
    },
    cancelJob: (call: ServerUnaryCall<GetJobRequest, Job>, cb: sendUnaryData<Job>) => {
      cancelled.push(call.request.jobId);
      cb(null, job(call.request.jobId, JobState.CANCELLED, { error: "cancelled by the client" }));
    },
    generate: (call: ServerWritableStream<GenerateRequest, JobEvent>) => {
      const req = call.request;
      requests.push(req);
      const id = `job-${requests.length}-${req.prompt.replace(/\W/g, "")}`;
      call.write(event(id, { case: "queued", value: create(QueuedSchema, { job: job(id, JobState.QUEUED), etaSeconds: 3 }) }));
      if (req.prompt === "never ends") return; // until the client goes away
      const image = create(ImageRefSchema, {
        index: 0,
        size: 64,
        key: `renders/${id}/0/64.png`,
        // Unreachable: with include_bytes the CLI must not fetch it.
        url: "http://127.0.0.1:9/unreachable.png",
        png: req.output?.includeBytes ? PNG : new Uint8Array(),
      });
      call.write(event(id, { case: "image", value: image }));
      call.write(event(id, { case: "completed", value: job(id, JobState.SUCCEEDED, { images: [image] }) }));
      call.end();
    },
    interpolateImages: (call: ServerWritableStream<InterpolateImagesRequest, JobEvent>) => manipulated(call),
    transformImage: (call: ServerWritableStream<TransformImageRequest, JobEvent>) => manipulated(call),
    watchJob: (call: ServerWritableStream<GetJobRequest, JobEvent>) => {
      const id = call.request.jobId;
      if (id === "missing-job") {
        call.emit("error", { code: status.NOT_FOUND, details: `job ${id} does not exist (or has expired)` });
        return;
      }
      call.write(event(id, { case: "step", value: { $typeName: "farm.v1.StepProgress", stage: 3, index: 0, step: 1, total: 2 } }));
      call.write(event(id, { case: "failed", value: job(id, JobState.FAILED, { error: "the decoder ran out of memory" }) }));
      call.end();
    },
  });
  return server;
}

/** Records the request and answers with a job that succeeds at once, without images. */
function manipulated(call: ServerWritableStream<InterpolateImagesRequest | TransformImageRequest, JobEvent>) {
  manipulations.push(call.request);
  const id = `job-m${manipulations.length}`;
  call.write(event(id, { case: "queued", value: create(QueuedSchema, { job: job(id, JobState.QUEUED), etaSeconds: 1 }) }));
  call.write(event(id, { case: "completed", value: job(id, JobState.SUCCEEDED) }));
  call.end();
}

let dir: string;
let plain: Server;
let tls: Server;
let plainAddress: string;
let tlsPort: number;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "unclip-cli-process-"));
  const bind = (server: Server, creds: ServerCredentials) =>
    new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (err, port) => (err ? reject(err) : resolve(port))));
  plain = gatewayStandIn();
  plainAddress = `127.0.0.1:${await bind(plain, ServerCredentials.createInsecure())}`;
  if (!HAVE_OPENSSL) return;
  const args = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost".split(" ");
  execFileSync("openssl", [...args, "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
  tls = gatewayStandIn();
  const [key, cert] = [await readFile(path.join(dir, "key.pem")), await readFile(path.join(dir, "cert.pem"))];
  tlsPort = await bind(tls, ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }], false));
});
afterAll(async () => {
  plain?.forceShutdown();
  tls?.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

describe("the unclip CLI as a process", { timeout: 60_000 }, () => {
  it("prints its version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await unclip(["--version"])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it("writes inline PNG bytes with --include-bytes, and prints JSON lines ending in the terminal event", async () => {
    const out = path.join(dir, "inline");
    const r = await unclip(["-a", plainAddress, "render", "inline please", "--include-bytes", "--json", "-o", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(requests.at(-1)!.output?.includeBytes).toBe(true);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines.map((l) => Object.keys(l).find((k) => !["jobId", "atMs"].includes(k)))).toEqual(["queued", "image", "completed"]);
    const jobId = lines[0]!.jobId as string;
    expect(lines[0]!.queued).toMatchObject({ job: { jobId, state: "JOB_STATE_QUEUED", numImages: 1 }, etaSeconds: 3 });
    // Canonical protobuf JSON leaves out fields at their zero value (index 0 here), as grpcurl does by default.
    expect(lines.at(-1)!.completed.images[0]).toEqual({
      size: 64,
      key: `renders/${jobId}/0/64.png`,
      url: "http://127.0.0.1:9/unreachable.png",
      png: Buffer.from(PNG).toString("base64"),
    });
    expect(new Uint8Array(await readFile(path.join(out, jobId, "0-64.png")))).toEqual(PNG);
    expect(r.stderr).toBe("");
  });

  it("prints the job id on stderr once queued, and the result on stdout", async () => {
    const r = await unclip(["-a", plainAddress, "render", "human", "--include-bytes", "-o", path.join(dir, "human")]);
    expect(r.code, r.stderr).toBe(0);
    const jobId = /^job (\S+) queued, ETA 3 s$/m.exec(r.stderr)![1]!;
    expect(r.stdout).toMatch(new RegExp(`^job ${jobId} finished in [\\d.]+ s\\n  image 0   64 px  .*0-64\\.png\\n$`));
  });

  it("on Ctrl-C leaves the job running and says how to watch or cancel it (exit 130)", async () => {
    let jobId = "";
    const r = await unclip(["-a", plainAddress, "render", "never ends", "--json"], {
      onLine: (line, kill) => {
        jobId = (JSON.parse(line) as { jobId: string }).jobId;
        kill("SIGINT");
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`stopped following job ${jobId}; it keeps running on the farm`);
    expect(r.stderr).toContain(`unclip -a ${plainAddress} watch ${jobId}`);
    expect(r.stderr).toContain(`unclip -a ${plainAddress} cancel ${jobId}`);
    expect(cancelled).not.toContain(jobId);
  });

  it("on Ctrl-C with --cancel-on-interrupt cancels the job (exit 130)", async () => {
    let jobId = "";
    const r = await unclip(["-a", plainAddress, "render", "never ends", "--json", "--cancel-on-interrupt"], {
      onLine: (line, kill) => {
        jobId = (JSON.parse(line) as { jobId: string }).jobId;
        kill("SIGINT");
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`cancelled job ${jobId} (cancelled)`);
    expect(cancelled).toContain(jobId);
  });

  it("watches a job to its end: JSON lines, exit 1 when it failed", async () => {
    const r = await unclip(["-a", plainAddress, "watch", "job-watched", "--json", "-o", path.join(dir, "watched")]);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines[0]).toMatchObject({ jobId: "job-watched", step: { stage: "STAGE_DECODER", step: 1, total: 2 } });
    expect(lines.at(-1)).toMatchObject({ failed: { state: "JOB_STATE_FAILED", error: "the decoder ran out of memory" } });
    expect(r.stderr).toBe("unclip: job job-watched failed: the decoder ran out of memory\n");
    expect((await unclip(["-a", plainAddress, "watch", "missing-job"])).code).toBe(64 + status.NOT_FOUND);
  });

  it("status: one JSON document, 69 for NOT_FOUND, 1 for a failed job", async () => {
    const ok = await unclip(["-a", plainAddress, "status", "job-ok", "--json"]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ jobId: "job-ok", state: "JOB_STATE_SUCCEEDED", numImages: 1 });
    const failed = await unclip(["-a", plainAddress, "status", "failed-job"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^job failed-job: failed\n.*\n.*\n  error: boom\n$/);
    const missing = await unclip(["-a", plainAddress, "status", "missing-job", "--json"]);
    expect(missing).toMatchObject({
      code: 69,
      stdout: "",
      stderr: "unclip: job missing-job does not exist (or has expired) (NOT_FOUND)\n",
    });
  });

  it.skipIf(!HAVE_OPENSSL)("talks TLS with --cacert (and refuses a certificate it cannot verify)", async () => {
    const cacert = path.join(dir, "cert.pem");
    const ok = await unclip(["-a", `localhost:${tlsPort}`, "--cacert", cacert, "status", "job-tls", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ jobId: "job-tls" });
    // The system's roots do not know the self-signed certificate; plaintext does not speak TLS.
    expect((await unclip(["-a", `localhost:${tlsPort}`, "--tls", "status", "job-tls"])).code).toBe(64 + status.UNAVAILABLE);
    expect((await unclip(["-a", `localhost:${tlsPort}`, "status", "job-tls"])).code).toBe(64 + status.UNAVAILABLE);
    const noKey = await unclip(["-a", `localhost:${tlsPort}`, "--cert", cacert, "status", "job-tls"]);
    expect(noKey).toMatchObject({ code: 2, stderr: expect.stringMatching(/--cert and --key go together/) });
  });

  it("interpolate and transform send the flags as InterpolateImages and TransformImage requests", async () => {
    const [a, b] = [path.join(dir, "a.png"), path.join(dir, "b.png")];
    await writeFile(a, PNG);
    await writeFile(b, Buffer.from("not read by the stand-in"));
    const out = ["-o", path.join(dir, "manipulated"), "--json"];
    const interpolate = await unclip([
      "-a",
      plainAddress,
      "interpolate",
      a,
      b,
      "--frames",
      "3",
      "--invert",
      "--seed",
      "9",
      "-s",
      "64",
      "--decoder-steps",
      "4",
      ...out,
    ]);
    expect(interpolate.code, interpolate.stderr).toBe(0);
    expect(manipulations.at(-1)).toMatchObject({
      frames: 3,
      invertSources: true,
      seed: 9n,
      size: 64,
      sampling: { decoderSteps: 4, priorSteps: 0 },
    });
    expect(new Uint8Array((manipulations.at(-1) as InterpolateImagesRequest).imageA)).toEqual(PNG);
    expect((await unclip(["-a", plainAddress, "interpolate", a, b, ...out])).code).toBe(0);
    expect(manipulations.at(-1)).toMatchObject({ frames: 8, invertSources: false, size: 1024 });

    const plainTransform = await unclip(["-a", plainAddress, "transform", a, "a blue", "--from", "a red", ...out]);
    expect(plainTransform.code, plainTransform.stderr).toBe(0);
    const sent = manipulations.at(-1) as TransformImageRequest;
    expect(sent).toMatchObject({ toCaption: "a blue", fromCaption: "a red", numImages: 1 });
    // Left out, strength and invert_source stay unset so the farm applies its defaults.
    expect([sent.strength, sent.invertSource]).toEqual([undefined, undefined]);
    expect((await unclip(["-a", plainAddress, "transform", a, "blue", "--strength", "0.25", "--no-invert", "-n", "3", ...out])).code).toBe(
      0,
    );
    expect(manipulations.at(-1)).toMatchObject({ fromCaption: "", strength: 0.25, invertSource: false, numImages: 3 });
    expect((await unclip(["-a", plainAddress, "transform", a, "blue", "--invert", ...out])).code).toBe(0);
    expect(manipulations.at(-1)).toMatchObject({ invertSource: true });

    const sentSoFar = manipulations.length;
    expect(await unclip(["-a", plainAddress, "interpolate", a, b, "--frames", "17"])).toMatchObject({
      code: 2,
      stderr: 'unclip: --frames: "17" is not a whole number from 2 to 16\n',
    });
    expect(await unclip(["-a", plainAddress, "transform", a, "blue", "--strength", "1.5"])).toMatchObject({
      code: 2,
      stderr: 'unclip: --strength: "1.5" is not a number from 0 to 1\n',
    });
    expect(await unclip(["-a", plainAddress, "transform", path.join(dir, "missing.png"), "blue"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^unclip: cannot read .*missing\.png: ENOENT/),
    });
    expect((await unclip(["-a", plainAddress, "interpolate", a, b, "--prior-steps", "5"])).stderr).toMatch(
      /unknown option '--prior-steps'/,
    );
    expect(manipulations.length).toBe(sentSoFar);
  });

  it("refuses bad flags with exit 2 and a message that names the flag", async () => {
    const seed = await unclip(["-a", plainAddress, "render", "a cat", "--seed", "abc"]);
    expect(seed).toMatchObject({
      code: 2,
      stdout: "",
      stderr: 'unclip: --seed: "abc" is not a whole number from 0 to 18446744073709551615\n',
    });
    expect((await unclip(["-a", "nowhere", "status", "x"])).stderr).toMatch(/^unclip: --address: "nowhere" is not host:port/);
    const unknown = await unclip(["render", "a cat", "--colour", "red"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^unclip: unknown option '--colour'/);
    expect(requests.map((r) => r.prompt)).not.toContain("a cat");
  });
});
