package clientsec

import (
	"testing"

	"github.com/kafkaguard/kafkaguard/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Main(m) }
