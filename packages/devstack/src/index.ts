export { startNatsServer, findNatsServer, type NatsServerHandle } from "./nats-server.js";
export { startS3Server, type S3ServerHandle } from "./s3-server.js";
export {
  startService,
  repoRoot,
  LAUNCHER_VARIABLES,
  type ServiceName,
  type ServiceProcess,
  type ServiceRuntime,
} from "./service-process.js";
export {
  SupervisedService,
  restartDelayMs,
  DEFAULT_RESTART_POLICY,
  type RestartPolicy,
  type SupervisedProcess,
  type SupervisedServiceOptions,
  type UnplannedExit,
} from "./supervised-service.js";
export { parseFarmWorkers, farmWorkerCounts, POOLS, MAX_WORKERS_PER_POOL } from "./farm-workers.js";
export { startFarmStack, describeProcess, type FarmStack, type FarmStackOptions } from "./farm-stack.js";
export { startFaultProxy, type FaultProxy, type FaultProxyMode, type FaultProxyOptions } from "./fault-proxy.js";
