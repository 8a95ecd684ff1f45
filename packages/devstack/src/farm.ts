import path from "node:path";
import { ConfigError } from "@unclip/core";
import { describeProcess, startFarmStack, type FarmStack } from "./farm-stack.js";

/**
 * `npm run farm`: the demo's farm, kept running until Ctrl-C; talk to it with `npm run unclip -- render "…"`.
 * UNCLIP_FARM_WORKERS="decoder=3,upscale=2" sets the worker processes per pool; a worker that exits is restarted.
 */
const logDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), "out", "logs");
const time = () => new Date().toISOString().slice(11, 19);
let farm: FarmStack;
try {
  farm = await startFarmStack({
    logDir,
    grpcPort: Number(process.env.UNCLIP_GRPC_PORT ?? 50051),
    log: (line) => console.log(`${time()} ${line}`),
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`farm: ${err.message}`);
  process.exit(2);
}
console.log(`farm running: gateway ${farm.grpcAddress}, nats ${farm.nats.url}, s3 ${farm.s3.endpoint}; logs in ${logDir}`);
for (const s of farm.services()) console.log(`  ${s.name.padEnd(17)} ${describeProcess(s.current)}`);
console.log(`try: npm run unclip -- -a ${farm.grpcAddress} render "a red circle on a blue background"   (Ctrl-C stops the farm)`);
// The gateway got UNCLIP_API_KEYS_FILE from this environment: calls need a tenant's key.
if (process.env.UNCLIP_API_KEYS_FILE) console.log("API keys are on: set UNCLIP_API_KEY to a tenant's key for the CLI");
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping the farm …");
  await farm.stop();
  process.exit(0);
};
process.on("SIGINT", stop).on("SIGTERM", stop);
