package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

// RealName is what the hub derives from a citizen's real-name data for services that find the
// citizen (hub/outreach), without the data itself: never the ID number or the name.
type RealName struct {
	Birth      time.Time // from the ID number (GB 11643 characters 7-14), UTC midnight
	CardExpiry time.Time // the ID card's expiry; zero when unknown or long-term
}

// RealNameOf derives a citizen's birth date and card expiry from her encrypted card data. An
// account without card data (a staff member, a citizen known by password only) is an error.
func (p *Provider) RealNameOf(ctx context.Context, accountID string) (RealName, error) {
	a, err := p.st.GetAccount(ctx, accountID)
	if err != nil {
		return RealName{}, err
	}
	card, err := p.IDCardOf(a)
	if err != nil {
		return RealName{}, err
	}
	defer card.Wipe()
	var rn RealName
	if rn.Birth, err = gb11643.BirthDate(card.Number); err != nil {
		return RealName{}, fmt.Errorf("identity: account %s: %w", accountID, err)
	}
	if t, err := time.Parse("20060102", card.ValidTo); err == nil {
		rn.CardExpiry = t
	}
	return rn, nil
}
