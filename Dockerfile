# syntax=docker/dockerfile:1
# Build a static defenderbot binary, then ship it alone on distroless as a non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/defenderbot ./cmd/defenderbot \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/defenderbot /usr/local/bin/defenderbot
# The working directory holds the default SQLite store (defenderbot.db):
# it must belong to the non-root user. Mount a volume here to keep it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/defenderbot
USER nonroot:nonroot
WORKDIR /var/lib/defenderbot
VOLUME ["/var/lib/defenderbot"]
EXPOSE 8080
# distroless has no shell or curl: the binary checks its own /healthz.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/defenderbot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/defenderbot"]
CMD ["serve"]
