package config

import (
	"fmt"
	"log/slog"
	"reflect"
)

// Secret is a credential. It prints, logs and marshals as "[REDACTED]" (or
// "" when unset) so that a config can be logged or dumped safely; use Value
// to get the credential itself.
type Secret string

const redacted = "[REDACTED]"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String implements fmt.Stringer without revealing the secret.
func (s Secret) String() string { return s.mask() }

// GoString implements fmt.GoStringer without revealing the secret.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.mask()) }

// LogValue implements slog.LogValuer without revealing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.mask()) }

// MarshalText keeps the secret out of JSON and YAML dumps.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// Format covers every fmt verb (%s, %v, %q, %x...), so no verb leaks it.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.mask())
}

// plainConfig has Config's fields but none of its methods, so that String
// does not recurse. Secrets stay redacted through their own methods.
type plainConfig Config

// String renders the configuration with secrets redacted.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", plainConfig(*c))
}

// GoString renders the configuration with secrets redacted.
func (c *Config) GoString() string {
	if c == nil {
		return "(*config.Config)(nil)"
	}
	return fmt.Sprintf("%#v", plainConfig(*c))
}

// LogValue logs the configuration as nested groups, secrets redacted.
func (c *Config) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	return structLogValue(reflect.ValueOf(*c))
}

func structLogValue(v reflect.Value) slog.Value {
	t := v.Type()
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		fv := v.Field(i)
		switch {
		case fv.Type() == secretType:
			attrs = append(attrs, slog.String(key, Secret(fv.String()).mask()))
		case fv.Kind() == reflect.Struct && fv.Type() != durationType:
			attrs = append(attrs, slog.Attr{Key: key, Value: structLogValue(fv)})
		default:
			attrs = append(attrs, slog.Any(key, fv.Interface()))
		}
	}
	return slog.GroupValue(attrs...)
}
