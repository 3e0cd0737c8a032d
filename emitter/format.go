package emitter

import "fmt"

// Format is a wire format of the original event-emitter.
type Format string

// The wire formats, named as the original's `format` parameter names them.
const (
	FormatJSON       Format = "JSON"
	FormatFlatBuffer Format = "FLATBUFFER"
)

// ParseFormat returns the Format named s, exactly as the original spells it.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatFlatBuffer:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want JSON or FLATBUFFER", s)
}

// Numbering selects the values of the FlatBuffer EventType and ResourceType
// enums: the original renumbered them between releases.
type Numbering string

// The numberings a receiver may expect.
const (
	// Numbering201 is the last HTTP release of the original (20.0.3 to 20.1.0).
	Numbering201 Numbering = "20.1"
	// NumberingBridge is releases 8.0.1-1.1 to 20.0.0, compiled into keycloak-bridge.
	NumberingBridge Numbering = "bridge"
	// Numbering26 is the 26.x releases of the original.
	Numbering26 Numbering = "26"
)

// ParseNumbering returns the Numbering named s.
func ParseNumbering(s string) (Numbering, error) {
	switch n := Numbering(s); n {
	case Numbering201, NumberingBridge, Numbering26:
		return n, nil
	}
	return "", fmt.Errorf("numbering %q: want 20.1, bridge or 26", s)
}
