// Package httpapi is the HTTP side of the edge: the EGS v1 routes on echo,
// the path normalisation in front of the router, the JSON envelope every
// response carries, the one mapping from rpc error codes to HTTP statuses,
// and bearer authentication and role checks.
package httpapi
