// Package events is the public vocabulary of the bus: stream and bucket names,
// subject builders and the versioned payload of every event type.
//
// Subjects are public API (downstream systems subscribe to them), so they are
// built here and nowhere else. Payload structs are wire types, never domain
// types: within v1 fields may only be added.
package events
