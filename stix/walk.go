package stix

import "errors"

// Comparisons returns every comparison of the pattern, left to right, whatever joins them.
func (p *Pattern) Comparisons() []*Comparison {
	if p == nil {
		return nil
	}
	var out []*Comparison
	// Explicit stacks: AND/OR chains are left-deep and may be thousands long.
	obs := []ObservationExpr{p.Expr}
	for len(obs) > 0 {
		e := obs[len(obs)-1]
		obs = obs[:len(obs)-1]
		switch n := e.(type) {
		case *Observation:
			out = appendComparisons(out, n.Expr)
		case *ObservationOp:
			obs = append(obs, n.Right, n.Left)
		case *Qualified:
			obs = append(obs, n.Expr)
		}
	}
	return out
}

func appendComparisons(out []*Comparison, e ComparisonExpr) []*Comparison {
	stack := []ComparisonExpr{e}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch n := e.(type) {
		case *Comparison:
			out = append(out, n)
		case *ComparisonOp:
			stack = append(stack, n.Right, n.Left)
		}
	}
	return out
}

// Errors returned by Disjuncts; match them with errors.Is.
var (
	ErrComparisonAND  = errors.New("pattern joins comparisons with AND: a single indicator cannot express it")
	ErrObservationAND = errors.New("pattern joins observations with AND: a single indicator cannot express it")
	ErrFollowedBy     = errors.New("pattern uses FOLLOWEDBY: a single indicator cannot express an ordered sequence")
	ErrQualifier      = errors.New("pattern has a qualifier (WITHIN, REPEATS or START/STOP): a single indicator cannot express it")
)

// Disjuncts returns the comparisons, left to right, when the pattern is a pure disjunction: OR between
// comparisons and between observations, parentheses allowed, no AND, no FOLLOWEDBY, no qualifier.
// Otherwise it returns one of ErrComparisonAND, ErrObservationAND, ErrFollowedBy or ErrQualifier (the
// first met, left to right). Each comparison may still carry any operator or NOT: the caller decides
// which ones it can turn into an indicator.
func (p *Pattern) Disjuncts() ([]*Comparison, error) {
	if p == nil {
		return nil, errors.New("nil pattern")
	}
	var out []*Comparison
	obs := []ObservationExpr{p.Expr}
	for len(obs) > 0 {
		e := obs[len(obs)-1]
		obs = obs[:len(obs)-1]
		switch n := e.(type) {
		case *Observation:
			stack := []ComparisonExpr{n.Expr}
			for len(stack) > 0 {
				c := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				switch m := c.(type) {
				case *Comparison:
					out = append(out, m)
				case *ComparisonOp:
					if m.Op != "OR" {
						return nil, ErrComparisonAND
					}
					stack = append(stack, m.Right, m.Left)
				}
			}
		case *ObservationOp:
			switch n.Op {
			case "OR":
				obs = append(obs, n.Right, n.Left)
			case "AND":
				return nil, ErrObservationAND
			default:
				return nil, ErrFollowedBy
			}
		case *Qualified:
			return nil, ErrQualifier
		}
	}
	return out, nil
}
