// Package bus is the NATS JetStream plumbing every service shares: connecting
// with reconnects, the CloudEvents envelope, de-duplicated publishing,
// idempotent declaration of streams, consumers and KV buckets, and durable pull
// consumers with explicit acks, bounded redelivery and a dead-letter subject.
//
// Request/reply lives in package rpc; subject names in package events.
package bus
