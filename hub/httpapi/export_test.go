package httpapi

// Degraded is degraded, for the tests.
var Degraded = degraded
