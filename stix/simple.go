package stix

// parseSimple parses the shape nearly every indicator of a feed has, one
// observation of equality comparisons joined by OR:
//
//	[ipv4-addr:value = '198.51.100.7']
//	[file:hashes.'SHA-256' = '…' OR file:hashes.MD5 = '…']
//
// without the lexer's tokens, giving the tree the full parser gives. It
// takes only a strict subset of the grammar (ASCII, single spaces or none
// where the examples have them, plain or quoted keys without escapes,
// string values without escapes) and says false for anything else, which
// the full parser then reads: it never decides that a pattern is invalid.
// FuzzSimpleMatchesParser holds the two together.
func parseSimple(s string) (*Pattern, bool) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	i := spaces(s, 1)
	var expr ComparisonExpr
	for {
		c, next, ok := simpleComparison(s, i)
		if !ok {
			return nil, false
		}
		if expr == nil {
			expr = c
		} else {
			expr = &ComparisonOp{Op: "OR", Left: expr, Right: c}
		}
		i = spaces(s, next)
		if i == len(s)-1 {
			return &Pattern{Expr: &Observation{Expr: expr}}, true
		}
		// " OR ", spaces on both sides: "'x'OR" lexes the same but is not
		// worth telling apart here.
		if i == next || i+3 > len(s) || s[i:i+2] != "OR" || s[i+2] != ' ' {
			return nil, false
		}
		i = spaces(s, i+2)
	}
}

// simpleComparison reads "type:key(.key)* = 'value'" at i.
func simpleComparison(s string, i int) (*Comparison, int, bool) {
	typ, i, hyphen := ident(s, i)
	if typ == "" || !hyphen && reserved(typ) || i >= len(s) || s[i] != ':' {
		return nil, 0, false
	}
	c := &Comparison{Path: ObjectPath{ObjectType: typ}, Op: "="}
	for {
		key, next, ok := simpleKey(s, i+1)
		if !ok {
			return nil, 0, false
		}
		c.Path.Components = append(c.Path.Components, PathComponent{Key: key})
		i = next
		if i >= len(s) || s[i] != '.' {
			break
		}
	}
	i = spaces(s, i)
	if i+1 >= len(s) || s[i] != '=' || s[i+1] == '=' {
		return nil, 0, false
	}
	str, i, ok := plainQuoted(s, spaces(s, i+1))
	if !ok {
		return nil, 0, false
	}
	c.Value = Literal{Kind: KindString, Str: str}
	return c, i, true
}

// simpleKey reads a property name without '-' that is no keyword, or a
// quoted key.
func simpleKey(s string, i int) (string, int, bool) {
	if i < len(s) && s[i] == '\'' {
		return plainQuoted(s, i)
	}
	key, next, hyphen := ident(s, i)
	if key == "" || hyphen || reserved(key) {
		return "", 0, false
	}
	return key, next, true
}

// ident reads an identifier at i as the lexer does (letters, digits, '_'
// and '-', not starting with a digit or '-'); "" if there is none.
func ident(s string, i int) (string, int, bool) {
	if i >= len(s) || !isIdentStart(s[i]) {
		return "", i, false
	}
	start, hyphen := i, false
	for i++; i < len(s) && (isIdentPart(s[i]) || s[i] == '-'); i++ {
		hyphen = hyphen || s[i] == '-'
	}
	return s[start:i], i, hyphen
}

// reserved reports whether the lexer would make a keyword or a boolean of an
// identifier without '-'.
func reserved(s string) bool {
	_, kw := keywords[s]
	return kw || s == "true" || s == "false"
}

// plainQuoted reads '…' at i holding only printable ASCII other than a
// backslash, and returns its body (a substring of s: nothing is copied).
func plainQuoted(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '\'' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '\'':
			return s[i+1 : j], j + 1, true
		case c == '\\' || c < ' ' || c >= 0x7f:
			return "", 0, false
		}
	}
	return "", 0, false
}

// spaces skips ASCII spaces.
func spaces(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}
