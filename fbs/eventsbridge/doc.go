// Package eventsbridge is the FlatBuffers code flatc generates from ../events-bridge.fbs:
// the Event and AdminEvent tables of the FLATBUFFER wire format with the enum
// numbering bridge (releases 8.0.1-1.1 to 20.0.0 of the original, and keycloak-bridge's receiver).
// Every other file of this package is generated; do not edit them.
package eventsbridge
