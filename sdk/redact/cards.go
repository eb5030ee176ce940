package redact

// Card numbers. A candidate is a sequence of 13 to 19 digits, written
// either as one run of digits or as groups of at least 3 digits separated
// by a single space or dash ("4111 1111 1111 1111", "3782-822463-10005"),
// whose first digit is 2 to 6 (the card networks' ranges: Mastercard 2 and 5,
// Amex, Diners and JCB 3, Visa 4, Discover, Maestro and UnionPay 6) and
// which passes the Luhn check. Any such sequence inside a longer run of
// groups is hidden, so "order 123 4111 1111 1111 1111" loses the card.
//
// Deliberately not hidden:
//   - a card glued to other digits ("74111111111111111" is an 18-digit
//     number that fails the checks, and cutting every long number into
//     windows would hide most long numbers of a body);
//   - cards written with other separators ("4111.1111…", two spaces);
//   - numbers starting with 0, 1, 7, 8 or 9, so millisecond and nanosecond
//     timestamps and most IDs are kept.
//
// A random number that happens to pass these checks (about one in ten
// 13–19-digit numbers starting with 2–6) is hidden too: the price of not
// missing cards.

const (
	minCard = 13
	maxCard = 19
)

func isCardByte(c byte) bool { return c >= '0' && c <= '9' || c == ' ' || c == '-' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanCards finds the runs of digits, spaces and dashes that are long enough
// to hold a card. Such a run covers at least minCard bytes, so it contains
// one of every minCard consecutive positions: probing one position in
// minCard skips most of a body without looking at it.
func scanCards(b []byte, sp []span) []span {
	p := 0 // every run starting before p has been handled; b[p-1] is not a card byte
	for {
		q := p + minCard - 1
		if q >= len(b) {
			return sp
		}
		if !isCardByte(b[q]) {
			p = q + 1
			continue
		}
		s := q
		for s > p && isCardByte(b[s-1]) {
			s--
		}
		e := q + 1
		for e < len(b) && isCardByte(b[e]) {
			e++
		}
		if e-s >= minCard {
			sp = cardsInRun(b, s, e, sp)
		}
		p = e + 1
	}
}

type group struct{ start, end int }

// cardsInRun looks for cards in b[s:e], a run of digits, spaces and dashes.
func cardsInRun(b []byte, s, e int, sp []span) []span {
	// The groups of the current chain (groups separated by single
	// separators); a multi-group card has at most 6 groups of 3 or more.
	var chain [6]group
	n := 0
	for i := s; i < e; {
		if !isDigit(b[i]) {
			i++
			continue
		}
		g := group{start: i}
		for i < e && isDigit(b[i]) {
			i++
		}
		g.end = i
		// A new chain starts unless exactly one separator precedes g and a
		// digit precedes that.
		if n > 0 && !(g.start-chain[(n-1)%6].end == 1) {
			n = 0
		}
		chain[n%6] = g
		n++
		sp = cardsEndingAt(b, chain[:], n, sp)
	}
	return sp
}

// cardsEndingAt checks the candidates that end with the newest group of the
// chain (n groups so far, the last 6 kept in ring).
func cardsEndingAt(b []byte, ring []group, n int, sp []span) []span {
	last := ring[(n-1)%6]
	if l := last.end - last.start; l >= minCard && l <= maxCard {
		if isCard(b, last.start, last.end) {
			sp = append(sp, span{start: last.start, end: last.end, number: true})
		}
	}
	if last.end-last.start < 3 {
		return sp
	}
	digits := last.end - last.start
	for k := 2; k <= 6 && k <= n; k++ {
		g := ring[(n-k)%6]
		d := g.end - g.start
		if d < 3 {
			break
		}
		digits += d
		if digits > maxCard {
			break
		}
		if digits >= minCard && isCard(b, g.start, last.end) {
			sp = append(sp, span{start: g.start, end: last.end})
		}
	}
	return sp
}

// isCard applies the first-digit and Luhn checks to the digits of b[s:e]
// (separators skipped).
func isCard(b []byte, s, e int) bool {
	if b[s] < '2' || b[s] > '6' {
		return false
	}
	sum, double := 0, false
	for i := e - 1; i >= s; i-- {
		c := b[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
