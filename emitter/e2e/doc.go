// Package e2e holds the end-to-end tests of the kc-event-emitter and
// kc-event-receiver binaries: it builds them, runs them as child processes
// against the real PostgreSQL and Keycloak that scripts/ start, kills and
// restarts them, and checks what arrived. It has no code of its own.
package e2e
