package defender_test

import (
	"context"
	"fmt"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
)

func ExampleClient_IsolateMachine() {
	srv := defendertest.New()
	if err := srv.Start(nil); err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.AddMachine(defendertest.Machine{ID: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", ComputerDNSName: "pc1.contoso.com"})

	c, err := defender.New(defender.Config{
		BaseURL:       srv.URL,
		AuthorityHost: srv.URL,
		TenantID:      defendertest.TenantID,
		ClientID:      defendertest.ClientID,
		ClientSecret:  defendertest.ClientSecret,
		Scope:         defender.Scope,
		Timeout:       30 * time.Second,
		MaxRetries:    5,
		MaxBackoff:    time.Minute,
	}, defender.WithHTTPClient(srv.HTTPClient()))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	t, err := defender.ParseIsolationType("selective") // user input
	if err != nil {
		panic(err)
	}
	ma, err := c.IsolateMachine(ctx, "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "INC-42: ransomware", t)
	if err != nil {
		panic(err)
	}
	fmt.Println(ma.Type, ma.Status, ma.RequestorComment)

	_, err = c.IsolateMachine(ctx, "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "again", t)
	fmt.Println(defender.IsActiveRequestAlreadyExists(err))
	// Output:
	// Isolate Pending INC-42: ransomware
	// true
}
