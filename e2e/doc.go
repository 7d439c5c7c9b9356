// Package e2e holds defenderbot's end-to-end tests: real signed HTTP
// requests go through the gin handlers into the approval bot, which talks to
// the Defender emulator and the Slack stand-in over loopback, with state in
// SQLite. It has no code besides its tests.
//
// No package imports it.
package e2e
