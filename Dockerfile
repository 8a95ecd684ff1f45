# syntax=docker/dockerfile:1
#
# unclip-farm: one image for every process. The default command runs the gateway; a worker is chosen by overriding
# the command (Kubernetes `command:`), e.g.
#   docker run --rm unclip-farm node --import tsx services/prior-worker/src/main.ts
# Services: gateway (gRPC 50051, metrics 9464), prior-worker (9465), decoder-worker (9466), upscale-worker (9467).
# All configuration is UNCLIP_* environment variables (see deploy/k8s/config.yaml); unknown UNCLIP_* names are refused.
#
# Build:  docker build -t unclip-farm:latest .
#
# ---------------------------------------------------------------------------------------------------------------------
# CUDA variant (for the GPU worker pools; the gateway never needs it)
# ---------------------------------------------------------------------------------------------------------------------
# This image is CPU-only: onnxruntime-node ships its CPU build inside the npm package, and its install script is
# skipped (ONNXRUNTIME_NODE_INSTALL=skip, also in .npmrc) because that script fetches the CUDA execution provider
# (libonnxruntime_providers_{cuda,shared,tensorrt}.so from the Microsoft.ML.OnnxRuntime.Gpu.Linux NuGet package) from
# api.nuget.org, i.e. from outside npm. A worker started with UNCLIP_EXECUTION_PROVIDER=cuda on this image logs a line
# and falls back to the CPU, so GPU nodes would sit idle: build a CUDA variant for the model workers:
#   1. Base it on an image that has the CUDA 12 runtime and cuDNN 9 user-space libraries (the NVIDIA container toolkit
#      injects only the driver), e.g. `nvidia/cuda:12.x-cudnn-runtime-ubuntu22.04` from your internal registry, and
#      install Node 20 (>= 20.19) on it, or add libcublas/libcufft/libcurand/cudnn packages to this Debian image.
#   2. Put the three provider .so files, taken from the Microsoft.ML.OnnxRuntime.Gpu.Linux package whose version equals
#      the onnxruntime-node version in package-lock.json (1.30.0), on the internal mirror, and after `npm ci` copy them
#      next to the CPU build:
#        ARG ORT_CUDA_URL=https://mirror.internal/onnxruntime/Microsoft.ML.OnnxRuntime.Gpu.Linux.1.30.0.nupkg
#        RUN curl -fsSL "$ORT_CUDA_URL" -o /tmp/ort.zip \
#         && unzip -j /tmp/ort.zip 'runtimes/linux-x64/native/libonnxruntime_providers_*.so' \
#              -d node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ \
#         && rm /tmp/ort.zip
#      (check the napi-v* directory name of the installed version). Alternatively, point the install script at an
#      internal NuGet feed and run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` in a build step that
#      can reach it.
#   3. Tag it separately (e.g. unclip-farm-cuda) and point the worker Deployments at it (deploy/k8s/kustomization.yaml,
#      `images:`). Verify on a GPU node: the worker's start-up log names the execution provider it actually got.
# ---------------------------------------------------------------------------------------------------------------------

ARG NODE_IMAGE=node:20-bookworm-slim

# Only the package manifests, so the dependency layer is rebuilt when they change, not on every source edit.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /manifests \
 && find . -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /manifests/ \; \
 && cp package-lock.json .npmrc /manifests/

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_onnxruntime_node_install=skip \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY --from=manifests /manifests/ ./
# Dev dependencies are needed at run time: the processes run TypeScript through tsx.
# Scripts run later (npm rebuild) once the sources are present, in case a workspace install script needs them.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_onnxruntime_node_install=skip \
    npm_config_update_notifier=false
# tini reaps children and forwards SIGTERM so the processes can drain and exit 0.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The whole deps tree: root node_modules plus the nested ones npm creates under some workspaces.
COPY --from=deps /app/ ./
COPY . .
RUN npm rebuild --no-audit --no-fund \
 && mkdir -p models/.cache \
 && chown node:node models/.cache

USER node
EXPOSE 50051 9464 9465 9466 9467
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "services/gateway/src/main.ts"]
