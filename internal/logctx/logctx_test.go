package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandlerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil))).With("component", "bot")

	ctx := WithRequestID(context.Background(), "req-1")
	assert.Equal(t, "req-1", RequestID(ctx))
	log.InfoContext(ctx, "with id")
	log.Info("without id")
	log.WithGroup("g").InfoContext(ctx, "grouped", "k", "v")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	require.Len(t, lines, 3)
	var first, second map[string]any
	require.NoError(t, json.Unmarshal(lines[0], &first))
	require.NoError(t, json.Unmarshal(lines[1], &second))
	assert.Equal(t, "req-1", first["request_id"])
	assert.Equal(t, "bot", first["component"])
	assert.NotContains(t, second, "request_id")
	assert.Contains(t, string(lines[2]), `"req-1"`)
}

func TestEmptyIDLeavesContextAlone(t *testing.T) {
	ctx := context.Background()
	assert.Equal(t, ctx, WithRequestID(ctx, ""))
	assert.Equal(t, "", RequestID(ctx))
	//nolint:staticcheck // a nil context must not panic
	assert.Equal(t, "", RequestID(nil)) //lint:ignore SA1012 deliberately nil
}
