package slackfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slacktest"
)

// Socket Mode envelope types Slack sends.
const (
	EnvelopeSlashCommands = "slash_commands"
	EnvelopeInteractive   = "interactive"
)

// socket is Slack's side of one Socket Mode connection.
type socket struct {
	conn  *websocket.Conn
	write chan []byte
	done  chan struct{}
}

type socketState struct {
	cur       *socket
	connected chan struct{} // closed and replaced when a client connects
	acks      map[string]chan json.RawMessage
	seq       int
}

func (s *Server) initSocket() {
	s.sock = socketState{connected: make(chan struct{}), acks: map[string]chan json.RawMessage{}}
}

// handleSocket serves apps.connections.open's WebSocket URL: it says hello,
// then relays envelopes from SendEnvelope and routes acks back.
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	slacktest.Websocket(func(conn *websocket.Conn) {
		sk := &socket{conn: conn, write: make(chan []byte, 16), done: make(chan struct{})}
		defer close(sk.done)
		if err := conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1}); err != nil {
			return
		}
		s.mu.Lock()
		s.sock.cur = sk
		close(s.sock.connected)
		s.sock.connected = make(chan struct{})
		s.mu.Unlock()

		go func() {
			for {
				select {
				case b := <-sk.write:
					if conn.WriteMessage(websocket.TextMessage, b) != nil {
						return
					}
				case <-sk.done:
					return
				}
			}
		}()
		for {
			var ack struct {
				EnvelopeID string          `json:"envelope_id"`
				Payload    json.RawMessage `json:"payload"`
			}
			if err := conn.ReadJSON(&ack); err != nil {
				s.mu.Lock()
				if s.sock.cur == sk {
					s.sock.cur = nil
				}
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			ch, ok := s.sock.acks[ack.EnvelopeID]
			delete(s.sock.acks, ack.EnvelopeID)
			s.mu.Unlock()
			if ok {
				ch <- ack.Payload
			}
		}
	})(w, r)
}

// WaitSocket waits until a Socket Mode client is connected.
func (s *Server) WaitSocket(ctx context.Context) error {
	for {
		s.mu.Lock()
		ok := s.sock.cur != nil
		ch := s.sock.connected
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slackfake: no Socket Mode client connected: %w", ctx.Err())
		}
	}
}

// SendEnvelope delivers payload to the connected Socket Mode client as an
// envelope of type typ (EnvelopeSlashCommands, EnvelopeInteractive) under
// envelopeID (a new one when empty; reuse one to play a redelivery), and
// returns the payload of its acknowledgement (nil when the ack had none).
func (s *Server) SendEnvelope(ctx context.Context, typ, envelopeID string, payload any) (json.RawMessage, error) {
	s.mu.Lock()
	sk := s.sock.cur
	if envelopeID == "" {
		s.sock.seq++
		envelopeID = fmt.Sprintf("env-%06d", s.sock.seq)
	}
	ch := make(chan json.RawMessage, 1)
	s.sock.acks[envelopeID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sock.acks, envelopeID)
		s.mu.Unlock()
	}()
	if sk == nil {
		return nil, errors.New("slackfake: no Socket Mode client connected")
	}
	b, err := json.Marshal(map[string]any{
		"type": typ, "envelope_id": envelopeID, "payload": payload, "accepts_response_payload": typ == EnvelopeSlashCommands,
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	select {
	case sk.write <- b:
	case <-sk.done:
		return nil, errors.New("slackfake: Socket Mode client disconnected")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case p := <-ch:
		if string(p) == "null" || len(p) == 0 {
			return nil, nil
		}
		return p, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("slackfake: envelope %s not acknowledged: %w", envelopeID, ctx.Err())
	}
}
