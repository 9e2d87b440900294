# syntax=docker/dockerfile:1
#
# Rotor's images for teams that build with Docker. Not built in CI here:
# this project has no Docker engine; `make image` builds the equivalent
# images without one (hack/image, package internal/ociimage), reproducibly.
#
# Both start from the same cross-compiled binaries, so run `make image` (or
# only its compile step) first; it leaves them in bin/linux_<arch>/<name>:
#
#   make image
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg BINARY=rotor-propeller -t rotor-propeller:dev .
#
# (`--target rotor-propeller` selects the same stage.) The result matches
# the ggcr image of `make image`: the binary at /<name> as the exec-form
# entrypoint, user 65532:65532, working directory /. Its digest differs:
# the distroless base has more files (tzdata, os-release, dpkg status) and
# Docker stamps its own times.
#
# ENTRYPOINT does not expand build args, so each binary has a stage and
# BINARY picks one by name: an ARG before the first FROM can name a stage
# (BuildKit, the default builder since Docker 23; so is COPY --chmod).

ARG BINARY=rotor-propeller

FROM gcr.io/distroless/static-debian12:nonroot AS base
USER 65532:65532
WORKDIR /

FROM base AS rotor-manager
ARG TARGETARCH
COPY --chown=0:0 --chmod=0755 bin/linux_${TARGETARCH}/rotor-manager /rotor-manager
ENTRYPOINT ["/rotor-manager"]

FROM base AS rotor-propeller
ARG TARGETARCH
COPY --chown=0:0 --chmod=0755 bin/linux_${TARGETARCH}/rotor-propeller /rotor-propeller
ENTRYPOINT ["/rotor-propeller"]

FROM base AS rotor
ARG TARGETARCH
COPY --chown=0:0 --chmod=0755 bin/linux_${TARGETARCH}/rotor /rotor
ENTRYPOINT ["/rotor"]

FROM base AS rotor-data
ARG TARGETARCH
COPY --chown=0:0 --chmod=0755 bin/linux_${TARGETARCH}/rotor-data /rotor-data
ENTRYPOINT ["/rotor-data"]

FROM ${BINARY}
