package defender

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// maxBatch is Microsoft's limit for import and batch delete.
const maxBatch = 500

type importBody struct {
	Indicators []Indicator `json:"Indicators"`
}

type batchDeleteBody struct {
	IndicatorIds []string `json:"IndicatorIds"`
}

// ImportIndicators submits or updates 1 to 500 indicators in one call. Every
// indicator is validated first; on any error nothing is sent. Per-item
// failures come back as ImportResult.IsFailed with HTTP 200. Response-only
// fields (id, createdBy, ...) of the input are not sent.
//
// API: POST /api/indicators/import
func (c *Client) ImportIndicators(ctx context.Context, inds []Indicator) ([]ImportResult, error) {
	if len(inds) == 0 || len(inds) > maxBatch {
		return nil, invalid("indicators", "got %d, want 1 to %d per call", len(inds), maxBatch)
	}
	body := importBody{Indicators: make([]Indicator, len(inds))}
	for i, in := range inds {
		if err := validateIndicator(fmt.Sprintf("indicators[%d]", i), in); err != nil {
			return nil, err
		}
		in.ID, in.CreatedBy, in.SourceType = "", "", ""
		in.CreationTimeDateTimeUTC, in.LastUpdateTime = nil, nil
		body.Indicators[i] = in
	}
	var out struct {
		Value []ImportResult `json:"value"`
	}
	// Import is an upsert, so re-sending after a lost response is safe.
	if _, err := c.do(ctx, &call{api: APIIndicatorImport, method: "POST", path: "/api/indicators/import", body: body}, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

func validateIndicator(field string, in Indicator) error {
	if strings.TrimSpace(in.IndicatorValue) == "" {
		return invalid(field+".indicatorValue", "is required")
	}
	if err := validateText(field+".indicatorValue", in.IndicatorValue, true); err != nil {
		return err
	}
	if err := oneOf(field+".indicatorType", in.IndicatorType, validIndicatorTypes); err != nil {
		return err
	}
	if err := oneOf(field+".action", in.Action, validIndicatorActions); err != nil {
		return err
	}
	if strings.TrimSpace(in.Title) == "" {
		return invalid(field+".title", "is required")
	}
	if strings.TrimSpace(in.Description) == "" {
		return invalid(field+".description", "is required")
	}
	if in.Severity != "" {
		if err := oneOf(field+".severity", in.Severity, validSeverities); err != nil {
			return err
		}
	}
	if in.Action == "Audit" && !in.GenerateAlert {
		return invalid(field+".generateAlert", "must be true when action is Audit")
	}
	return nil
}

// IndicatorListOptions filters ListIndicators. Empty fields are not filtered
// on. Top 0 returns every match (all pages).
type IndicatorListOptions struct {
	IndicatorType  string
	IndicatorValue string
	CreatedBy      string
	Top            int
	Skip           int
}

// ListIndicators lists indicators, following paging until done.
//
// API: GET /api/indicators?$filter=...
func (c *Client) ListIndicators(ctx context.Context, opts IndicatorListOptions) ([]Indicator, error) {
	var typ string
	if opts.IndicatorType != "" {
		t, err := lookup("indicator type", opts.IndicatorType, aliasesOf(validIndicatorTypes), validIndicatorTypes)
		if err != nil {
			return nil, err
		}
		typ = string(t)
	}
	if err := validateText("indicator value", opts.IndicatorValue, false); err != nil {
		return nil, err
	}
	if err := validateText("created by", opts.CreatedBy, false); err != nil {
		return nil, err
	}
	if err := validatePaging(opts.Top, opts.Skip); err != nil {
		return nil, err
	}
	filter := eqFilter("indicatorType", typ, "indicatorValue", opts.IndicatorValue, "createdBy", opts.CreatedBy)
	raws, err := c.list(ctx, APIIndicators, "/api/indicators", filter, opts.Top, opts.Skip, false)
	if err != nil {
		return nil, err
	}
	out := make([]Indicator, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, fmt.Errorf("defender: GET /api/indicators: decoding item %d: %w", i, err)
		}
		// A tenant's worth of raw items need not outlive their decoding:
		// the IOC sync lists up to 15,000 of them.
		raws[i] = nil
	}
	return out, nil
}

// DeleteIndicators deletes 1 to 500 indicators by id in one call. Defender
// rejects the whole batch if any id is unknown (404).
//
// API: POST /api/indicators/BatchDelete
func (c *Client) DeleteIndicators(ctx context.Context, ids []string) error {
	if len(ids) == 0 || len(ids) > maxBatch {
		return invalid("indicator ids", "got %d, want 1 to %d per call", len(ids), maxBatch)
	}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if err := validateID(fmt.Sprintf("indicator ids[%d]", i), id); err != nil {
			return err
		}
		if seen[id] {
			return invalid(fmt.Sprintf("indicator ids[%d]", i), "%q is listed twice", id)
		}
		seen[id] = true
	}
	body := batchDeleteBody{IndicatorIds: append([]string(nil), ids...)}
	_, err := c.do(ctx, &call{api: APIIndicatorDelete, method: "POST", path: "/api/indicators/BatchDelete", body: body}, nil)
	return err
}
