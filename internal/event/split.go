package event

// SplitArray calls each, in order, with the bytes of every element of the JSON
// array in data, and stops at the first error each returns, returning it.
//
// SplitArray checks the array itself (the brackets, the commas, the strings)
// but not each element in full, and it follows nesting with a counter, so it
// is cheap and bounded whatever the depth: each element is meant for Parse,
// which checks it. An element with unbalanced brackets may therefore be cut
// at the wrong place; Parse then reports it. It returns a *SyntaxError when
// data is not an array.
func SplitArray(data []byte, each func(elem []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return &SyntaxError{Offset: i, Msg: "expected a JSON array"}
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return trailing(data, i+1)
	}
	for {
		start := i
		depth := 0
	elem:
		for i < len(data) {
			switch data[i] {
			case '"':
				j, err := skipString(data, i)
				if err != nil {
					return err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 {
					break elem
				}
				depth--
			case ',':
				if depth == 0 {
					break elem
				}
			}
			i++
		}
		end := i
		for end > start && isSpace(data[end-1]) {
			end--
		}
		if end == start {
			return &SyntaxError{Offset: i, Msg: "expected an array element"}
		}
		if i >= len(data) {
			return &SyntaxError{Offset: i, Msg: "unexpected end of input, expected ',' or ']'"}
		}
		if err := each(data[start:end]); err != nil {
			return err
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case ']':
			return trailing(data, i+1)
		default:
			return &SyntaxError{Offset: i, Msg: "unexpected '" + string(data[i]) + "', expected ',' or ']'"}
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func trailing(data []byte, i int) error {
	if i = skipSpace(data, i); i < len(data) {
		return &SyntaxError{Offset: i, Msg: "unexpected data after the end of the array"}
	}
	return nil
}

// skipString returns the offset just past the string starting at data[i].
func skipString(data []byte, i int) (int, error) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '"':
			return j + 1, nil
		case '\\':
			j++
		}
	}
	return 0, &SyntaxError{Offset: i, Msg: "unterminated string"}
}
