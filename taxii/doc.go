// Package taxii is a TAXII 2.1 client: it reads a collection's objects page
// by page (following more/next), authenticates with HTTP Basic or a Bearer
// token, retries 429 and 5xx answers honouring Retry-After, and hands each
// page on as a stream so that memory is bounded by one page.
//
// Failures are typed: an *Error for a non-2xx answer (match the category with
// errors.Is: ErrUnauthorized, ErrForbidden, ErrNotFound, ErrThrottled,
// ErrServer) and a *BadResponseError (ErrBadResponse) for a 2xx answer that is
// not a TAXII envelope. Error text names the URL, never the credentials.
//
//	c, err := taxii.New(taxii.Config{APIRoot: "https://taxii.example/api1/", Username: "u", Password: key,
//		Timeout: time.Minute, MaxRetries: 5, MaxWait: 5 * time.Minute, MaxPageBytes: 256 << 20})
//	res, err := c.Objects(ctx, collectionID, taxii.ObjectsOptions{Types: []string{"indicator"}, AddedAfter: cursor, Limit: 1000},
//		func(p *taxii.Page) error { return consume(p.Objects) })
//	// next run: AddedAfter = res.DateAddedLast
//
// The package taxiitest next to it is a TAXII 2.1 server for tests and the
// emulator.
//
// It owns the TAXII protocol only. It must not import any defenderbot
// package but internal/httpwait (ioc and cmd build on it; STIX parsing is
// package stix's).
package taxii
