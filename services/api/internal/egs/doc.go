// Package egs holds the EGS v1 wire shapes (egs-api-v1.md) and the pure
// conversions between them and the rpc bodies of the services: request
// decoding and syntax validation, GPR, workspace, API-key and inventory
// objects, and the duration and timestamp formats of decision D8.
//
// Validation failures come back as *rpc.Error (BAD_REQUEST for a body that is
// not JSON, UNPROCESSABLE_ENTITY for everything else) whose message is safe to
// show to clients.
package egs
