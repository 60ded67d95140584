package kdg

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// gen renders one expression.
type gen func(f *Faker) string

// function is a template function: compile checks the arguments once, at parse time, and
// returns what renders the expression.
type function struct {
	compile func(a *argList) (gen, error)
}

// Functions returns the names of every function a template may call, sorted.
func Functions() []string {
	names := make([]string, 0, len(functions))
	for n := range functions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func namespaces() []string {
	var out []string
	for _, n := range Functions() {
		ns, _, _ := strings.Cut(n, ".")
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}

// plain is a function without arguments.
func plain(g gen) function {
	return function{compile: func(a *argList) (gen, error) {
		if err := a.atMost(0, ""); err != nil {
			return nil, err
		}
		return g, nil
	}}
}

// withCount is a function of one optional whole-number argument.
func withCount(def func(f *Faker) int, lo, hi int, forms string, g func(f *Faker, n int) string) function {
	return function{compile: func(a *argList) (gen, error) {
		if err := a.atMost(1, forms); err != nil {
			return nil, err
		}
		if a.has(0) {
			n, err := a.intAt(0, a.vals[0], lo, hi)
			if err != nil {
				return nil, err
			}
			return func(f *Faker) string { return g(f, n) }, nil
		}
		return func(f *Faker) string { return g(f, def(f)) }, nil
	}}
}

func fixed(n int) func(*Faker) int { return func(*Faker) int { return n } }

func between(lo, hi int) func(*Faker) int { return func(f *Faker) int { return f.g.IntRange(lo, hi) } }

// maxCount bounds counts of words, characters and the like, so one expression cannot make a
// record larger than Kinesis takes.
const maxCount = 100_000

var functions map[string]function

func init() {
	functions = map[string]function{
		// random
		"random.number":               {compile: randomNumber(1)},
		"random.float":                {compile: randomNumber(0.01)},
		"random.arrayElement":         {compile: arrayElement},
		"random.arrayElements":        {compile: arrayElements},
		"random.weightedArrayElement": {compile: weightedArrayElement},
		"random.uuid":                 plain(func(f *Faker) string { return f.g.UUID() }),
		"random.boolean":              plain(func(f *Faker) string { return strconv.FormatBool(f.g.Bool()) }),
		"random.word":                 plain(func(f *Faker) string { return f.g.Word() }),
		"random.words": withCount(between(1, 3), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return words(n, f.g.Word)
		}),
		"random.alphaNumeric": withCount(fixed(1), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return chars(f, n, "0123456789abcdefghijklmnopqrstuvwxyz")
		}),
		"random.hexaDecimal": withCount(fixed(1), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return "0x" + chars(f, n, "0123456789abcdef")
		}),

		// date
		"date.now":     {compile: dateFormat(false)},
		"date.utc":     {compile: dateFormat(true)},
		"date.past":    {compile: dateSpan("years", -1)},
		"date.future":  {compile: dateSpan("years", 1)},
		"date.recent":  {compile: dateSpan("days", -1)},
		"date.soon":    {compile: dateSpan("days", 1)},
		"date.between": {compile: dateBetween},
		"date.month":   plain(func(f *Faker) string { return f.g.MonthString() }),
		"date.weekday": plain(func(f *Faker) string { return f.g.WeekDay() }),

		// name
		"name.firstName":     plain(func(f *Faker) string { return f.g.FirstName() }),
		"name.lastName":      plain(func(f *Faker) string { return f.g.LastName() }),
		"name.findName":      plain(func(f *Faker) string { return f.g.FirstName() + " " + f.g.LastName() }),
		"name.prefix":        plain(func(f *Faker) string { return f.g.NamePrefix() }),
		"name.suffix":        plain(func(f *Faker) string { return f.g.NameSuffix() }),
		"name.title":         plain(func(f *Faker) string { return f.g.JobDescriptor() + " " + f.g.JobLevel() + " " + f.g.JobTitle() }),
		"name.jobTitle":      plain(func(f *Faker) string { return f.g.JobDescriptor() + " " + f.g.JobTitle() }),
		"name.jobDescriptor": plain(func(f *Faker) string { return f.g.JobDescriptor() }),
		"name.jobArea":       plain(func(f *Faker) string { return f.g.JobLevel() }),
		"name.jobType":       plain(func(f *Faker) string { return f.g.JobTitle() }),
		"name.gender":        plain(func(f *Faker) string { return f.g.Gender() }),

		// internet
		"internet.email":        plain(func(f *Faker) string { return f.g.Email() }),
		"internet.exampleEmail": plain(func(f *Faker) string { return strings.ToLower(f.g.FirstName()+"."+f.g.LastName()) + "@example.com" }),
		"internet.userName":     plain(func(f *Faker) string { return strings.ReplaceAll(f.g.Username(), " ", "_") }),
		"internet.url":          plain(func(f *Faker) string { return f.g.URL() }),
		"internet.domainName":   plain(func(f *Faker) string { return f.g.DomainName() }),
		"internet.domainSuffix": plain(func(f *Faker) string { return f.g.DomainSuffix() }),
		"internet.domainWord":   plain(func(f *Faker) string { return strings.ToLower(f.g.LastName()) }),
		"internet.ip":           plain(func(f *Faker) string { return f.g.IPv4Address() }),
		"internet.ipv6":         plain(func(f *Faker) string { return f.g.IPv6Address() }),
		"internet.mac":          plain(func(f *Faker) string { return f.g.MacAddress() }),
		"internet.userAgent":    plain(func(f *Faker) string { return f.g.UserAgent() }),
		"internet.protocol":     plain(func(f *Faker) string { return f.g.RandomString([]string{"http", "https"}) }),
		"internet.color":        plain(func(f *Faker) string { return strings.ToLower(f.g.HexColor()) }),
		"internet.avatar":       plain(func(f *Faker) string { return imageURL(f, 128, 128, "people") }),
		"internet.password": withCount(fixed(15), 1, maxCount, "(length)", func(f *Faker, n int) string {
			return f.g.Password(true, true, true, false, false, n)
		}),

		// address
		"address.zipCode":          plain(func(f *Faker) string { return f.g.Zip() }),
		"address.city":             plain(func(f *Faker) string { return f.g.City() }),
		"address.streetName":       plain(func(f *Faker) string { return f.g.StreetName() + " " + f.g.StreetSuffix() }),
		"address.streetAddress":    plain(func(f *Faker) string { return f.g.Street() }),
		"address.streetSuffix":     plain(func(f *Faker) string { return f.g.StreetSuffix() }),
		"address.streetPrefix":     plain(func(f *Faker) string { return f.g.StreetPrefix() }),
		"address.buildingNumber":   plain(func(f *Faker) string { return f.g.StreetNumber() }),
		"address.secondaryAddress": plain(func(f *Faker) string { return f.g.Unit() }),
		"address.country":          plain(func(f *Faker) string { return f.g.Country() }),
		"address.countryCode":      plain(func(f *Faker) string { return f.g.CountryAbr() }),
		"address.state":            plain(func(f *Faker) string { return f.g.State() }),
		"address.stateAbbr":        plain(func(f *Faker) string { return f.g.StateAbr() }),
		"address.latitude":         plain(func(f *Faker) string { return strconv.FormatFloat(f.g.Latitude(), 'f', 4, 64) }),
		"address.longitude":        plain(func(f *Faker) string { return strconv.FormatFloat(f.g.Longitude(), 'f', 4, 64) }),
		"address.timeZone":         plain(func(f *Faker) string { return f.g.TimeZoneRegion() }),

		// commerce
		"commerce.color":            plain(func(f *Faker) string { return strings.ToLower(f.g.Color()) }),
		"commerce.department":       plain(func(f *Faker) string { return titleCase(f.g.ProductCategory()) }),
		"commerce.productName":      plain(func(f *Faker) string { return f.g.ProductName() }),
		"commerce.productAdjective": plain(func(f *Faker) string { return titleCase(f.g.AdjectiveDescriptive()) }),
		"commerce.productMaterial":  plain(func(f *Faker) string { return titleCase(f.g.ProductMaterial()) }),
		"commerce.price":            {compile: amount(1, 1000, 2)},

		// company
		"company.companyName":   plain(func(f *Faker) string { return f.g.Company() }),
		"company.companySuffix": plain(func(f *Faker) string { return f.g.CompanySuffix() }),
		"company.catchPhrase":   plain(func(f *Faker) string { return f.g.Slogan() }),
		"company.bs":            plain(func(f *Faker) string { return f.g.BS() }),
		"company.bsBuzz":        plain(func(f *Faker) string { return f.g.BuzzWord() }),

		// finance
		"finance.amount": {compile: amount(0, 1000, 2)},
		"finance.account": withCount(fixed(8), 1, 64, "(length)", func(f *Faker, n int) string {
			return chars(f, n, "0123456789")
		}),
		"finance.accountName":  plain(func(f *Faker) string { return titleCase(f.g.BankType()) + " Account" }),
		"finance.currencyCode": plain(func(f *Faker) string { return f.g.CurrencyShort() }),
		"finance.currencyName": plain(func(f *Faker) string { return f.g.CurrencyLong() }),
		"finance.transactionType": plain(func(f *Faker) string {
			return f.g.RandomString([]string{"deposit", "withdrawal", "payment", "invoice"})
		}),
		"finance.creditCardNumber": plain(func(f *Faker) string { return f.g.CreditCardNumber(nil) }),
		"finance.bitcoinAddress":   plain(func(f *Faker) string { return f.g.BitcoinAddress() }),

		// lorem
		"lorem.word": plain(func(f *Faker) string { return f.g.LoremIpsumWord() }),
		"lorem.words": withCount(fixed(3), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return words(n, f.g.LoremIpsumWord)
		}),
		"lorem.sentence": withCount(between(3, 10), 1, maxCount, "(wordCount)", loremSentence),
		"lorem.sentences": withCount(between(2, 6), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return repeat(n, " ", func() string { return loremSentence(f, f.g.IntRange(3, 10)) })
		}),
		"lorem.paragraph": withCount(fixed(3), 1, maxCount, "(sentenceCount)", loremParagraph),
		"lorem.paragraphs": withCount(fixed(3), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return repeat(n, "\n \r", func() string { return loremParagraph(f, 3) })
		}),
		"lorem.text": plain(func(f *Faker) string { return loremSentence(f, f.g.IntRange(3, 10)) }),
		"lorem.lines": withCount(between(1, 5), 1, maxCount, "(count)", func(f *Faker, n int) string {
			return repeat(n, "\n", func() string { return loremSentence(f, f.g.IntRange(3, 10)) })
		}),
		"lorem.slug": withCount(fixed(3), 1, maxCount, "(wordCount)", func(f *Faker, n int) string {
			return strings.ReplaceAll(words(n, f.g.LoremIpsumWord), " ", "-")
		}),

		// phone
		"phone.phoneNumber": {compile: phoneNumber},

		// hacker
		"hacker.abbreviation": plain(func(f *Faker) string { return f.g.HackerAbbreviation() }),
		"hacker.adjective":    plain(func(f *Faker) string { return f.g.HackerAdjective() }),
		"hacker.noun":         plain(func(f *Faker) string { return f.g.HackerNoun() }),
		"hacker.verb":         plain(func(f *Faker) string { return f.g.HackerVerb() }),
		"hacker.ingverb":      plain(func(f *Faker) string { return f.g.HackeringVerb() }),
		"hacker.phrase":       plain(func(f *Faker) string { return f.g.HackerPhrase() }),

		// image
		"image.image":    {compile: image("")},
		"image.imageUrl": {compile: imageURLFunc},
		"image.avatar":   plain(func(f *Faker) string { return imageURL(f, 128, 128, "people") }),
	}
	for _, c := range imageCategories {
		functions["image."+c] = function{compile: image(c)}
	}
}

// imageCategories are faker.js's image categories, each also a function image.<category>.
var imageCategories = []string{"abstract", "animals", "business", "cats", "city", "food",
	"nightlife", "fashion", "people", "nature", "sports", "technics", "transport"}

// randomNumber is random.number (precision 1 by default) and random.float (0.01): () for 0 to
// 99999, (max) for 0 to max, or ({"min":…,"max":…,"precision":…}); bounds are inclusive.
func randomNumber(defPrecision float64) func(a *argList) (gen, error) {
	return func(a *argList) (gen, error) {
		const forms = `(max) or ({"min":…,"max":…,"precision":…})`
		if err := a.atMost(1, forms); err != nil {
			return nil, err
		}
		lo, hi, prec := 0.0, 99999.0, defPrecision
		if a.has(0) {
			if obj, isObj := a.vals[0].(map[string]any); isObj {
				if _, err := a.object(0, "min", "max", "precision"); err != nil {
					return nil, err
				}
				for key, dst := range map[string]*float64{"min": &lo, "max": &hi, "precision": &prec} {
					v, set := obj[key]
					if !set {
						continue
					}
					f, ok := number(v)
					if !ok {
						return nil, a.errf(0, "%q is %s, not a number", key, show(v))
					}
					*dst = f
				}
				if _, set := obj["max"]; !set && lo > hi {
					hi = lo + 99999
				}
			} else {
				f, ok := number(a.vals[0])
				if !ok {
					return nil, a.errf(0, "%s is neither a number nor an object; want %s", show(a.vals[0]), forms)
				}
				hi = f
			}
		}
		if prec <= 0 {
			return nil, a.errf(0, "precision %s must be greater than 0", jsNumber(prec))
		}
		if lo > hi {
			return nil, a.errf(0, "min %s is greater than max %s", jsNumber(lo), jsNumber(hi))
		}
		steps := math.Floor((hi-lo)/prec + 1e-9)
		if steps > math.MaxInt32*1e6 {
			return nil, a.errf(0, "min %s to max %s in steps of %s is too many values", jsNumber(lo), jsNumber(hi), jsNumber(prec))
		}
		d := decimals(prec)
		n := int(steps)
		return func(f *Faker) string {
			return jsNumber(roundTo(lo+float64(f.g.IntRange(0, n))*prec, d))
		}, nil
	}
}

func arrayElement(a *argList) (gen, error) {
	if err := a.atMost(1, "(array)"); err != nil {
		return nil, err
	}
	vals, err := a.elements(0)
	if err != nil {
		return nil, err
	}
	return func(f *Faker) string { return vals[f.g.IntN(len(vals))] }, nil
}

// arrayElements picks count distinct elements (default: a random number of them) and writes
// them as JavaScript writes an array: joined by commas.
func arrayElements(a *argList) (gen, error) {
	if err := a.atMost(2, "(array, count)"); err != nil {
		return nil, err
	}
	vals, err := a.elements(0)
	if err != nil {
		return nil, err
	}
	count, err := a.optInt(1, 0, 1, len(vals))
	if err != nil {
		return nil, err
	}
	return func(f *Faker) string {
		n := count
		if n == 0 {
			n = f.g.IntRange(1, len(vals))
		}
		idx := make([]int, len(vals))
		for i := range idx {
			idx[i] = i
		}
		f.g.ShuffleInts(idx)
		out := make([]string, n)
		for i := range out {
			out[i] = vals[idx[i]]
		}
		return strings.Join(out, ",")
	}, nil
}

func weightedArrayElement(a *argList) (gen, error) {
	const form = `({"weights":[…],"data":[…]})`
	if err := a.atMost(1, form); err != nil {
		return nil, err
	}
	if !a.has(0) {
		return nil, fmt.Errorf("%s needs %s", a.fn, form)
	}
	obj, err := a.object(0, "weights", "data")
	if err != nil {
		return nil, err
	}
	ws, ok1 := obj["weights"].([]any)
	data, ok2 := obj["data"].([]any)
	if !ok1 || !ok2 {
		return nil, a.errf(0, `"weights" and "data" must both be arrays; want %s`, form)
	}
	if len(data) == 0 || len(ws) != len(data) {
		return nil, a.errf(0, `"weights" has %d entries and "data" %d; want the same number, at least one`, len(ws), len(data))
	}
	cum := make([]float64, len(ws))
	total := 0.0
	for i, w := range ws {
		f, ok := number(w)
		if !ok || f < 0 {
			return nil, a.errf(0, "weight %d is %s; want a number of 0 or more", i+1, show(w))
		}
		total += f
		cum[i] = total
	}
	if total <= 0 {
		return nil, a.errf(0, "the weights add up to 0; give at least one a positive weight")
	}
	vals := make([]string, len(data))
	for i, v := range data {
		vals[i] = jsString(v)
	}
	return func(f *Faker) string {
		x := f.g.Float64() * total
		for i, c := range cum {
			if x < c {
				return vals[i]
			}
		}
		return vals[len(vals)-1]
	}, nil
}

// dateFormat is date.now and date.utc: the clock's time in moment.js format (moment's default
// format when none is given).
func dateFormat(utc bool) func(a *argList) (gen, error) {
	return func(a *argList) (gen, error) {
		if err := a.atMost(1, `(format), e.g. ("YYYY-MM-DD HH:mm:ss")`); err != nil {
			return nil, err
		}
		def := momentDefault
		if utc {
			def = "YYYY-MM-DDTHH:mm:ss[Z]"
		}
		format, err := a.optStr(0, def)
		if err != nil {
			return nil, err
		}
		return func(f *Faker) string {
			t := f.now().In(f.loc)
			if utc {
				t = t.UTC()
			}
			return FormatMoment(t, format)
		}, nil
	}
}

// dateSpan is date.past and date.future (unit years) and date.recent and date.soon (days): a
// random time up to n units before (sign -1) or after (+1) the reference date, by default now.
func dateSpan(unit string, sign int) func(a *argList) (gen, error) {
	return func(a *argList) (gen, error) {
		forms := "(" + unit + ")"
		if unit == "years" {
			forms = "(years, refDate)"
		}
		max := 1
		if unit == "years" {
			max = 2
		}
		if err := a.atMost(max, forms); err != nil {
			return nil, err
		}
		n, err := a.optNum(0, 1)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return nil, a.errf(0, "%s %s must be greater than 0", unit, jsNumber(n))
		}
		span := time.Duration(n * 24 * float64(time.Hour))
		if unit == "years" {
			span = time.Duration(n * 365 * 24 * float64(time.Hour))
		}
		ref, hasRef, err := a.optDate(1)
		if err != nil {
			return nil, err
		}
		return func(f *Faker) string {
			base := ref
			if !hasRef {
				base = f.now()
			}
			off := time.Duration(f.r.Int64N(int64(span)) + 1)
			return jsDateString(base.Add(time.Duration(sign) * off).In(f.loc))
		}, nil
	}
}

func dateBetween(a *argList) (gen, error) {
	if err := a.atMost(2, "(from, to)"); err != nil {
		return nil, err
	}
	from, ok1, err := a.optDate(0)
	if err != nil {
		return nil, err
	}
	to, ok2, err := a.optDate(1)
	if err != nil {
		return nil, err
	}
	if !ok1 || !ok2 {
		return nil, fmt.Errorf(`%s needs two dates, (from, to), e.g. ("2024-01-01","2024-12-31")`, a.fn)
	}
	if to.Before(from) {
		return nil, a.errf(1, "%s is before %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	span := to.Sub(from)
	return func(f *Faker) string {
		return jsDateString(from.Add(time.Duration(f.r.Int64N(int64(span) + 1))).In(f.loc))
	}, nil
}

// amount is finance.amount and commerce.price: (min, max, decimals, symbol).
func amount(defMin, defMax float64, defDec int) func(a *argList) (gen, error) {
	return func(a *argList) (gen, error) {
		if err := a.atMost(4, "(min, max, decimals, symbol)"); err != nil {
			return nil, err
		}
		lo, err := a.optNum(0, defMin)
		if err != nil {
			return nil, err
		}
		hi, err := a.optNum(1, defMax)
		if err != nil {
			return nil, err
		}
		dec, err := a.optInt(2, defDec, 0, 10)
		if err != nil {
			return nil, err
		}
		sym, err := a.optStr(3, "")
		if err != nil {
			return nil, err
		}
		if lo > hi {
			return nil, a.errf(0, "min %s is greater than max %s", jsNumber(lo), jsNumber(hi))
		}
		return func(f *Faker) string {
			v := lo + f.g.Float64()*(hi-lo)
			return sym + strconv.FormatFloat(roundTo(v, dec), 'f', dec, 64)
		}, nil
	}
}

// phoneNumber is phone.phoneNumber: (format) replaces each # with a digit.
func phoneNumber(a *argList) (gen, error) {
	if err := a.atMost(1, `(format), e.g. ("###-###-####")`); err != nil {
		return nil, err
	}
	format, err := a.optStr(0, "")
	if err != nil {
		return nil, err
	}
	if format == "" {
		return func(f *Faker) string { return f.g.PhoneFormatted() }, nil
	}
	return func(f *Faker) string { return f.g.Numerify(format) }, nil
}

func image(category string) func(a *argList) (gen, error) {
	return func(a *argList) (gen, error) {
		if err := a.atMost(2, "(width, height)"); err != nil {
			return nil, err
		}
		w, h, err := a.size()
		if err != nil {
			return nil, err
		}
		return func(f *Faker) string {
			c := category
			if c == "" {
				c = imageCategories[f.g.IntN(len(imageCategories))]
			}
			return imageURL(f, w, h, c)
		}, nil
	}
}

func imageURLFunc(a *argList) (gen, error) {
	if err := a.atMost(3, "(width, height, category)"); err != nil {
		return nil, err
	}
	w, h, err := a.size()
	if err != nil {
		return nil, err
	}
	c, err := a.optStr(2, "")
	if err != nil {
		return nil, err
	}
	return func(f *Faker) string { return imageURL(f, w, h, c) }, nil
}

// imageURL is a placeholder image's address, as faker.js makes them.
func imageURL(f *Faker, w, h int, category string) string {
	u := fmt.Sprintf("https://loremflickr.com/%d/%d", w, h)
	if category != "" {
		u += "/" + category
	}
	return fmt.Sprintf("%s?lock=%d", u, f.g.IntRange(1, 99999))
}

func loremSentence(f *Faker, n int) string {
	s := words(n, f.g.LoremIpsumWord)
	return string(unicode.ToUpper(rune(s[0]))) + s[1:] + "."
}

func loremParagraph(f *Faker, n int) string {
	return repeat(n, " ", func() string { return loremSentence(f, f.g.IntRange(3, 10)) })
}

func words(n int, word func() string) string {
	return repeat(n, " ", word)
}

func repeat(n int, sep string, one func() string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = one()
	}
	return strings.Join(parts, sep)
}

func chars(f *Faker, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[f.g.IntN(len(alphabet))]
	}
	return string(b)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// size reads an image's (width, height), 640 by 480 by default.
func (a *argList) size() (w, h int, err error) {
	if w, err = a.optInt(0, 640, 1, 10000); err != nil {
		return 0, 0, err
	}
	if h, err = a.optInt(1, 480, 1, 10000); err != nil {
		return 0, 0, err
	}
	return w, h, nil
}

// elements reads argument i as a non-empty array and writes each element as text.
func (a *argList) elements(i int) ([]string, error) {
	arr, err := a.array(i, `an array of values, e.g. ["a","b"]`)
	if err != nil {
		return nil, err
	}
	vals := make([]string, len(arr))
	for j, v := range arr {
		vals[j] = jsString(v)
	}
	return vals, nil
}
