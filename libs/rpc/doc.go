// Package rpc is request/reply over NATS between the api edge and the services:
// the typed bodies of every method (subjects in package events), the error
// codes a service answers with, a nats.go/micro server helper and a client
// helper with timeouts.
//
// A reply is one JSON object: {"data": ...} on success or
// {"error": {"code": "...", "message": "..."}} on failure. The message of an
// error with a code other than INTERNAL is safe to show to API clients.
package rpc
