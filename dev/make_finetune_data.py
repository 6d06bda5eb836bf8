"""
Generate the small fine-tuning datasets used by `./demo finetune`.

Four tasks, each with a train / dev / test split, written to data/finetune/:

  sentiment.{train,dev,test}.tsv  label<TAB>text, labels positive / negative
  topic.{train,dev,test}.tsv      label<TAB>text, labels sports / science / food / music
  ner.{train,dev,test}.conll      one "token tag" per line, blank line between sentences,
                                  BIO tags over the types PER, ORG, LOC
  qa.{train,dev,test}.tsv         prompt<TAB>completion (completion starts with a space)

Every sentence comes from hand-written templates filled from hand-written word
lists. All people, organisations, places, products, bands and countries are
invented for this project. The data is meant to be learnable by a tiny model in
a minute or two of CPU training: short ASCII sentences with a clear signal.

Two things keep the evaluation honest:
  * no text appears in more than one split (examples are de-duplicated globally);
  * NER dev/test use names held out of train (30% of every name list), and the QA
    dev/test sets ask the same facts as train, but with phrasings train never uses.

The script checks the files it wrote (see self_check) and prints a summary.
Deterministic: a fixed seed, so rerunning gives byte-identical files.

Usage (from the repo root):  /usr/bin/python3 dev/make_finetune_data.py
"""
import os
import random
import re
import sys
from collections import Counter

SEED = 2026
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "finetune")
SIZES = {"sentiment": (600, 150, 150), "topic": (600, 150, 150),
         "ner": (600, 150, 150), "qa": (600, 100, 100)}
SPLITS = ("train", "dev", "test")
rng = random.Random(SEED)          # the only source of randomness

def words(s):   return s.split()                             # "a b c" -> [a, b, c]
def items(s):   return [x.strip() for x in s.split(",")]     # for multi-word entries
def cap(s):     return s[0].upper() + s[1:]
def a_an(word): return ("an " if word[0] in "aeiou" else "a ") + word

def unique_samples(make, n, seen):
    """Call make() until it has given n results not in `seen` (which it updates)."""
    out, tries = [], 0
    while len(out) < n:
        x = make()
        tries += 1
        if tries > 1000 * n:
            sys.exit("generator ran out of distinct examples")
        if repr(x) not in seen:
            seen.add(repr(x))
            out.append(x)
    return out

def split_counts(total, n_labels, offset):
    """Spread `total` examples over n_labels as evenly as possible; the leftovers
    go to the labels starting at `offset` (rotated per split, so totals even out)."""
    base, extra = divmod(total, n_labels)
    return [base + ((i - offset) % n_labels < extra) for i in range(n_labels)]

def fill(template, vocab):
    """Replace each {slot} by a random entry of vocab[slot]. A slot named x2 draws
    from the same list as x, but never repeats x's value ("{team} beat {team2}")."""
    used = {}
    for slot in re.findall(r"{(\w+)}", template):
        base = slot.rstrip("2")
        value = rng.choice([v for v in vocab[base] if v != used.get(base)])
        used[base] = value
        template = template.replace("{" + slot + "}", value, 1)
    return cap(template)

# ---------------------------------------------------------------- 1. sentiment
# (mild, strong) adjectives: mild ones take any intensifier ("very dull"), strong
# ones only a few ("absolutely awful", never "very excellent")
ADJ = {"positive": (words("good nice pleasant enjoyable charming impressive lovely"),
                    words("great wonderful excellent superb fantastic brilliant amazing perfect")),
       "negative": (words("bad boring dull disappointing poor bland annoying tedious sloppy"),
                    words("awful terrible horrible dreadful useless"))}
MILD_INTENS = ["", "", "very ", "really ", "quite ", "so ", "pretty "]
STRONG_INTENS = ["", "", "absolutely ", "truly ", "simply "]
POS_VERB = ["loved", "enjoyed", "adored", "really liked", "was impressed by"]
NEG_VERB = ["hated", "disliked", "regretted", "could not stand", "was let down by"]
POS_CLAUSE = ["I would recommend it", "we will be back", "it was worth the money",
              "everyone loved it", "I would do it again", "it made my day"]
NEG_CLAUSE = ["I would not recommend it", "we will not be back", "it was a waste of money",
              "nobody liked it", "I want a refund", "it ruined my day"]
PRODUCTS = words("phone lamp kettle backpack blender headset umbrella tent bicycle toaster")
BRANDS = words("Zentra Lumio Krellon Pallix Quenby Torvo")
FILMS = words("film movie sequel documentary thriller comedy cartoon musical")
TITLES = items("Silver Tide, Paper Boats, Night at Harrow, Ten Quiet Rooms, Copper Sky")
MEALS = words("soup pizza dinner breakfast curry cake salad lunch burger pasta")
EATERIES = items("the Blue Fig, Casa Pell, the Copper Pot, Nina's Kitchen, the Harbour Grill")
TRIPS = items("trip, holiday, cruise, tour, train ride, flight")
RESORTS = items("Lindmoor, Cape Sorrel, Ravella, Ostbay, the Tessel hills")

def subject():
    """A random thing to have an opinion about: (noun phrase, bare noun)."""
    kind = rng.randrange(4)
    if kind == 0:
        n = rng.choice(PRODUCTS)
        return rng.choice(["the " + n, "the new %s %s" % (rng.choice(BRANDS), n),
                           "my %s %s" % (rng.choice(BRANDS), n)]), n
    if kind == 1:
        n = rng.choice(FILMS)
        return rng.choice(["the " + n, "the %s %s" % (n, rng.choice(TITLES)),
                           rng.choice(TITLES)]), n
    if kind == 2:
        n = rng.choice(MEALS)
        return rng.choice(["the " + n, "the %s at %s" % (n, rng.choice(EATERIES))]), n
    n = rng.choice(TRIPS)
    return rng.choice(["the " + n, "our %s to %s" % (n, rng.choice(RESORTS))]), n

def adjective(label):
    """An adjective of the given polarity, sometimes with an intensifier."""
    mild, strong = ADJ[label]
    if rng.random() < 0.6:
        return rng.choice(MILD_INTENS) + rng.choice(mild)
    return rng.choice(STRONG_INTENS) + rng.choice(strong)

def sentiment_maker(label):
    """A function that returns one random sentence with the given label."""
    good = label == "positive"
    other = "negative" if good else "positive"
    verbs, clauses = (POS_VERB, POS_CLAUSE) if good else (NEG_VERB, NEG_CLAUSE)
    def make():
        s, noun = subject()
        S, adj = cap(s), adjective(label)
        templates = [
            f"{S} was {adj}.",
            f"Honestly, {s} was {adj}.",
            f"I thought {s} was {adj}.",
            f"{S} was {adj} and {rng.choice(clauses)}.",
            f"What {a_an(rng.choice(sum(ADJ[label], [])))} {noun}!",
            f"I {rng.choice(verbs)} {s}.",
            f"My friends said {s} was {adj}.",
            f"Overall, {s} was {adj}.",
            # a contrast: the label follows the final verdict, not the first impression
            f"{S} seemed {rng.choice(ADJ[other][0])} at first, but it was {adj} in the end.",
        ]
        if not good:   # simple negation, only ever of a mild positive word (so: negative)
            pos = rng.choice(ADJ["positive"][0])
            templates.append(rng.choice([f"{S} was not {pos} at all.",
                                         f"Sadly, {s} was not very {pos}."]))
        return rng.choice(templates)
    return make

# -------------------------------------------------------------------- 2. topic
# Person names are shared by all four topics, so a name alone says nothing.
TOPIC_VOCAB = {
    "name": items("Mira Tollen, Ansel Grube, Dela Varn, Tobin Aske, Sefa Lorrin, Kip Orlo, "
                  "Wren Maddox, Ilse Brannock, Joss Petrel, Nuala Fenn, Otto Kray, Rhea Salby"),
    # sports
    "team": items("Harrow City, the Red Kites, Port Sable United, the Tessel Hawks, "
                  "Brindle Athletic, the Northfield Foxes, Caskey Town, the Silver Otters"),
    "score": words("1-0 2-1 3-2 4-0 2-0 3-1"),
    "event": items("final, semi-final, league match, derby, cup tie, opening game"),
    "race": items("marathon, 400m race, cycling stage, swimming relay, ski race, rowing final"),
    "position": words("goalkeeper striker defender winger midfielder"),
    "sport": words("tennis rugby basketball hockey volleyball cricket"),
    # science
    "sky": items("a faint comet, a distant galaxy, a young star, two colliding stars, "
                 "a ring of dust, a new moon of a giant planet"),
    "cells": items("skin cells, yeast cells, heart cells, soil bacteria, green algae, nerve cells"),
    "lab": items("the Ostler Institute, the Vantry Observatory, the Hale Research Centre, "
                 "the university lab"),
    "material": items("the crystal, the enzyme, the protein, the metal alloy, the salt solution"),
    "force": words("heat light pressure magnets acid cold"),
    "field": items("dark matter, DNA repair, ocean bacteria, solar flares, enzyme shapes, "
                   "gravity waves"),
    # food
    "bake": items("sourdough bread, rye loaves, cinnamon rolls, oat biscuits, cherry tarts, "
                  "plum cake"),
    "bakery": items("Copper Oven bakery, Little Crumb bakery, market bakery, corner bakery"),
    "soup": items("tomato soup, lentil soup, onion soup, pumpkin soup, fish stew, bean chili"),
    "ingredient": items("garlic, butter, fresh basil, two onions, black pepper, lemon juice, "
                        "rice, cream, a little honey"),
    "dish": items("grilled fish, mushroom risotto, roast chicken, spicy noodles, "
                  "pancakes with jam, a cheese omelette"),
    "eatery": items("Casa Pell, the Blue Fig, the Harbour Grill, Nina's Kitchen, the Copper Pot"),
    "veg": items("carrots, potatoes, peppers, sweet onions, beetroot"),
    # music
    "band": items("the Paper Lanterns, Velvet Harbour, the Night Owls, Glass Static, "
                  "the Lowtide Choir, Marrow Street"),
    "song": items("Glass Rivers, Paper Moon Road, Quiet Engines, Northern Lights Waltz, "
                  "Salt and Honey, Blue Hour"),
    "venue": items("the Old Mill Hall, the city park, the summer festival, a tiny club, "
                   "the opera house"),
    "theme": items("the sea, lost love, a summer road trip, her home town, the night sky, "
                   "growing older"),
    "instr": words("guitar piano drum violin cello trumpet saxophone"),
}
TOPIC_TEMPLATES = {
    "sports": ["{team} beat {team2} {score} in the {event}.",
               "{name} scored twice as {team} won the {event}.",
               "{name} won the {race} in record time.",
               "The coach of {team} blamed the wet pitch for the {score} defeat.",
               "Fans filled the stadium to watch {team} play {team2}.",
               "The referee sent off {name} in the {event}.",
               "{team} signed the {position} {name} for the new season.",
               "{name} hopes to win a medal in {sport} this season."],
    "science": ["{name} observed {sky} through the new telescope.",
                "Researchers at {lab} grew {cells} in a dish.",
                "The experiment showed that {cells} divide faster when warm.",
                "{name} measured how {material} reacts to {force}.",
                "A new study from {lab} looks at {field}.",
                "{name} used a microscope to count {cells}.",
                "Scientists at {lab} published new data on {field}.",
                "Under the microscope, {material} changed shape when exposed to {force}."],
    "food": ["{name} baked {bake} at the {bakery} this morning.",
             "This {soup} recipe needs {ingredient} and {ingredient2}.",
             "The chef at {eatery} serves {dish} with {ingredient}.",
             "Stir the {soup} slowly and add {ingredient}.",
             "{name} roasted {veg} for the family dinner.",
             "Mix the flour, eggs and {ingredient} before baking the {bake}.",
             "{eatery} won a prize for its {dish}.",
             "For breakfast, {name} made {dish}."],
    "music": ["{band} played {song} at {venue}.",
              "{name} wrote a new song about {theme}.",
              "The {instr} solo in {song} lasted four minutes.",
              "{band} released a new album with a song about {theme}.",
              "Tickets for the {band} concert at {venue} sold out in an hour.",
              "{name} plays the {instr} in {band}.",
              "The crowd sang along to every chorus of {song}.",
              "{name} joined {band} on {instr} for the tour."],
}

def build_classification(makers, sizes):
    """makers: {label: make()}. Returns [train, dev, test], each a shuffled list of
    (label, text), with labels as balanced as the split sizes allow."""
    labels, seen, splits, offset = list(makers), set(), [], 0
    for size in sizes:
        counts = split_counts(size, len(labels), offset)
        offset += size % len(labels)
        rows = [(lab, text) for lab, n in zip(labels, counts)
                for text in unique_samples(makers[lab], n, seen)]
        rng.shuffle(rows)
        splits.append(rows)
    return splits

# ---------------------------------------------------------------------- 3. NER
FIRST = words("""Aldren Brisa Caelo Dorvin Elvra Fenrik Galia Harlo Isvel Jorna Kasimo Liora
    Madrek Nessa Orvin Pelia Quillan Rosk Sabela Tovin Ulma Varek Wenna Yastri Zerin Amsel
    Belko Cirra Davo Eshka Forna Gresk Hadia Ilvo Jessen Kelva Lorn Mirel Nadro Osra Pellan
    Quessa Ravno Selka Tarvo Ursel Vinna Wrell Xarin Yelma Zobra Arvessa Bodrin Calvra Delmo
    Eirna Falkro Gildo Hesmer Idra Jask Korra Lessel Morva Nilo Oskeld Prenna Rilla Stavro
    Teska Umbrel Veska Wilvo Yesko Zenna Ambro Brenla Corvel Derra Elvesk""")
LAST = words("""Ashvane Brackwell Corrimore Dunhalt Elderby Fallowmere Garnoth Halvers Ilthorpe
    Jorvath Kettleby Lorvane Marrowind Nettlefold Ostravel Pellaway Quorrel Reddane Saltwhistle
    Tennick Underhay Vossler Wendlecott Yarrowby Zelnick Abernash Bellweather Crandle Dovetree
    Eskerby Fernhollow Goldwhistle Harrowmere Ivesdon Jarnell Kelloway Lindqvor Mossgrave
    Nimbleton Orchardley Pennywick Quistram Rookhart Sellory Tamberlin Ulverick Vantrell Wexley
    Yorwood Zandrell Arkenfall Burnholt Cindermoss Drummock Emberlee Foxmantle Greymarsh
    Hollowell Inchmarrow Mistlebrook""")
ORGS = items("""Brightwater Labs, Norlund Bank, Kestrel Motors Group, Velstrom, Orrin Foods,
    Pallix Systems, Tindermark, Greyharbour Shipping, Luma Textiles, Quarrow Insurance,
    Silverbirch Media, Korvex, Starling Air, Bluefen Energy, Oakrun Partners, Merrow Press,
    Copperline Rail, Zentrix Software, Harbourlight Trust, Fenmoor Pharma, Redcliff Mining Group,
    Amberlane Books, Northgate Robotics, Cobalt Ridge Capital, Glimmer Studios, Ravenholt Steel,
    Tidewell Water, Mapleforge, Pinecrest Hotels, Ironbloom Farms, Lantern Health,
    Sablewood Furniture, Driftstone Games, Vireo Telecom, Hollin Brewery, Summit Arc Logistics,
    Greenquill Publishing, Brasswing Aviation, Clearmont University, Peregrine Data Group,
    Thistle Bank, Marblecrest Foods, Quillon, Stonefold Builders, Wavecrest Radio,
    Juniper Row Cinemas, Oxbell Chemicals, Fairhollow Clinic, Nightjar Security, Everbright Solar""")
PLACES = items("""Valmora, Port Ellis, Drennick, Lower Hask, Ostmere, Kelbrae, Tarrow, Silvan Bay,
    Mirrowdale, Gessany, North Vell, Cardonne, Ulmera, Breska, Fenholt, Castavel, Lake Tessel,
    Halvenport, Mount Corra, Dunmarsh, Pellistra, West Ardley, Rimholt, Saint Ovel, Norvessa,
    Taloria, Gravenwick, Estervale, Yelland, Corvenna, Brightmoor, Ashkirk, Lissara, New Tamber,
    Okkar, Perrow Point, Quendal, Ravensey, Sulmere, Thornwick Falls, Ulden, Varsa, Wexmoor,
    Zorvan, Amberlyn, Belcross, Cindral, Dorrow, Elmsreach, Kirrin Bay""")
# capitalised words that are NOT entities, so capitalisation alone is not enough
FILLERS = {"DAY": words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
           "MONTH": words("January February March April May June July August September "
                          "October November December"),
           "THING": words("parcel invoice report contract letter printer package furniture "
                          "tickets samples laptop order brochure keys budget")}
NER_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .", "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER} .", "{PER} and {PER} visited {LOC} on {DAY} .",
    "{ORG} and {ORG} signed a deal .", "The flight from {LOC} to {LOC} was delayed .",
    "{PER} moved to {LOC} last year .", "{PER} is the new director of {ORG} .",
    "{ORG} hired {PER} as a consultant .", "On {DAY} , {PER} gave a talk in {LOC} .",
    "Shares of {ORG} rose after the report .", "{LOC} and {LOC} share a long border .",
    "A spokesperson for {ORG} said the plant in {LOC} will stay open .",
    "{PER} told reporters that {ORG} is growing .", "We drove from {LOC} to {LOC} in one day .",
    "The museum in {LOC} was founded by {PER} .", "{PER} , a lawyer from {LOC} , joined {ORG} .",
    "Talks between {ORG} and {ORG} ended on {DAY} .",
    "According to {PER} , the bridge in {LOC} needs repairs .",
    "{ORG} bought a small company based in {LOC} .", "The award went to {PER} .",
    "Last week the team met with {ORG} .", "{PER} grew up in {LOC} .",
    "Tourists love the old harbour of {LOC} .", "{PER} and {PER} founded {ORG} in {MONTH} .",
    "Thanks to {PER} , the fair in {LOC} was a success .",
    "Did {PER} call {ORG} about the {THING} ?", "The new train line links {LOC} with {LOC} .",
    "{ORG} will sponsor the festival in {LOC} .",
    "In {MONTH} , {ORG} moved its headquarters to {LOC} .", "{PER} thanked {PER} for the help .",
    "The report was written by {PER} of {ORG} .", "Visitors from {LOC} praised the food .",
    "Snow fell across {LOC} on {DAY} .",
    # no entities at all
    "The meeting was moved to {DAY} .", "It rained all day on {DAY} .",
    "The {THING} arrived late again .", "Please send the {THING} before {MONTH} .",
    "Nobody knew where the {THING} was .", "In {MONTH} the {THING} will be cheaper .",
]
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

def hold_out(lst, frac=0.3):
    """Split a list into (seen, held_out): held_out (~frac) is used only in dev/test."""
    lst = lst[:]
    rng.shuffle(lst)
    k = round(len(lst) * frac)
    return lst[k:], lst[:k]

NAMES = {"first": hold_out(FIRST), "last": hold_out(LAST),
         "ORG": hold_out(ORGS), "LOC": hold_out(PLACES)}

def pick(kind, split):
    """Train draws only seen names; dev/test draw a held-out name half the time."""
    seen, held = NAMES[kind]
    return rng.choice(held if split != "train" and rng.random() < 0.5 else seen)

def ner_sentence(split):
    """One sentence as a tuple of (token, tag) pairs."""
    out, used = [], set()
    for tok in rng.choice(NER_TEMPLATES).split():
        if tok in ("{PER}", "{ORG}", "{LOC}"):
            typ = tok[1:-1]
            while True:   # persons: first name, or first name + surname
                if typ == "PER":
                    ent = pick("first", split) + (" " + pick("last", split)
                                                  if rng.random() < 0.6 else "")
                else:
                    ent = pick(typ, split)
                if ent not in used:
                    break
            used.add(ent)
            out += [(w, ("B-" if i == 0 else "I-") + typ) for i, w in enumerate(ent.split())]
        elif tok[0] == "{":
            out.append((rng.choice(FILLERS[tok[1:-1]]), "O"))
        else:
            out.append((tok, "O"))
    return tuple(out)

def spans(sent):
    """The entities of a sentence as (type, "string") pairs."""
    found = []
    for tok, tag in sent:
        if tag.startswith("B-"):
            found.append([tag[2:], tok])
        elif tag.startswith("I-"):
            found[-1][1] += " " + tok
    return [tuple(f) for f in found]

# ------------------------------------------------------------ 4. generation (QA)
CAPITALS = [tuple(p.split("-")) for p in words("""Valmora-Lesk Ostrana-Belvo Kirrundi-Tamsa
    Pelloria-Ardune Zembra-Kolt Fennmark-Rusel Quaria-Doss Tessavia-Mirn Lunesca-Pradi
    Hollvast-Ennet Corvania-Salk Drisland-Vey Emberia-Gallis Norveth-Skarn Yassa-Tulim
    Brevonia-Okko Sarrow-Linde Marquen-Fosk Galdria-Reth Ivorne-Paskal Umbrask-Hollo
    Westrel-Cadden Jutarra-Nemis Razmir-Quell Kelvaro-Brim""")]
ANTONYMS = [tuple(p.split("-")) for p in words("""hot-cold big-small fast-slow up-down
    open-closed early-late full-empty happy-sad wet-dry loud-quiet rich-poor hard-soft near-far
    day-night first-last left-right true-false clean-dirty strong-weak thick-thin""")]
OPPOSITES = ANTONYMS + [(b, a) for a, b in ANTONYMS]          # both directions
PLURALS = [tuple(p.split("-")) for p in words("""cat-cats dog-dogs book-books tree-trees
    car-cars house-houses bird-birds apple-apples cup-cups door-doors hat-hats pen-pens
    ship-ships lamp-lamps frog-frogs star-stars box-boxes bus-buses dish-dishes watch-watches
    fox-foxes glass-glasses brush-brushes church-churches city-cities baby-babies
    story-stories party-parties lady-ladies berry-berries fly-flies puppy-puppies mouse-mice
    child-children foot-feet tooth-teeth man-men woman-women leaf-leaves knife-knives""")]
# task: (pairs, phrasings used in train, phrasings used only in dev/test)
QA_TASKS = {
    "capital": (CAPITALS,
                ["Capital of {}?", "Capital of {}:", "What is the capital of {}?",
                 "The capital of {} is", "The capital city of {} is", "{} has its capital in",
                 "Which city is the capital of {}?", "Name the capital of {}:"],
                ["Capital city of {}?", "Tell me the capital of {}.",
                 "What city is the capital of {}?"]),
    "opposite": (OPPOSITES,
                 ["Opposite of {}:", "The opposite of {} is", "What is the opposite of {}?",
                  "Antonym of {}:", "The word {} is the opposite of"],
                 ["Tell me the opposite of {}.", "What word is the opposite of {}?"]),
    "plural": (PLURALS,
               ["Plural of {}:", "The plural of {} is", "What is the plural of {}?",
                "One {}, two", "In the plural, {} becomes"],
               ["Tell me the plural of {}.", "What word is the plural of {}?"]),
}

def build_qa(sizes):
    """Train: every pair with every train phrasing. Dev/test: held-out phrasings."""
    train = [(task, ph.format(q), " " + a) for task, (pairs, phs, _) in QA_TASKS.items()
             for ph in phs for q, a in pairs]
    assert len(train) == sizes[0], len(train)
    rng.shuffle(train)
    pools = {task: [(task, ph.format(q), " " + a) for ph in new for q, a in pairs]
             for task, (pairs, _, new) in QA_TASKS.items()}
    for pool in pools.values():
        rng.shuffle(pool)
    splits, offset = [train], 0
    for size in sizes[1:]:
        counts = split_counts(size, len(pools), offset)
        offset += size % len(pools)
        rows = []
        for (task, pool), n in zip(pools.items(), counts):
            rows += pool[:n]
            del pool[:n]
        rng.shuffle(rows)
        splits.append(rows)
    return splits

# ------------------------------------------------------------ writing, checking
def write_lines(name, lines):
    with open(os.path.join(OUT_DIR, name), "w", encoding="ascii", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))

def read_lines(name):
    with open(os.path.join(OUT_DIR, name), encoding="ascii", newline="") as f:
        text = f.read()
    assert text.endswith("\n") and "\r" not in text, name
    return text[:-1].split("\n")

def check_tsv(name, labels=None):
    """Every line: exactly one tab, no stray whitespace; returns [(field1, field2)]."""
    rows = []
    for line in read_lines(name):
        assert line.count("\t") == 1 and line == line.strip(), (name, line)
        a, b = line.split("\t")
        assert a and b.strip() and len(b) < 120, (name, line)
        assert labels is None or a in labels, (name, line)
        rows.append((a, b))
    return rows

def check_conll(name):
    """Every token line: "token tag" with a valid tag; I-X only after B-X or I-X."""
    sents, sent = [], []
    for line in read_lines(name) + [""]:
        if not line:
            assert sent, (name, "empty sentence")
            sents.append(tuple(sent))
            sent = []
            continue
        fields = line.split(" ")
        assert len(fields) == 2 and fields[1] in TAGS and fields[0].strip(), (name, line)
        prev = sent[-1][1] if sent else "O"
        assert not fields[1].startswith("I-") or prev[2:] == fields[1][2:], (name, line)
        sent.append(tuple(fields))
    return sents

def self_check():
    """Re-read every file and check its format, sizes and the train/dev/test separation."""
    for task in ("sentiment", "topic", "qa"):
        labels = {"sentiment": ("positive", "negative"),
                  "topic": tuple(TOPIC_TEMPLATES)}.get(task)
        data = [check_tsv(f"{task}.{sp}.tsv", labels) for sp in SPLITS]
        assert tuple(map(len, data)) == SIZES[task], task
        texts = [set(b if labels else a for a, b in rows) for rows in data]
        assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2]), task
        if task == "qa":
            for a, b in sum(data, []):   # completions: leading space, 1-3 words
                assert b[0] == " " and b[1] != " " and 1 <= len(b.split()) <= 3, (a, b)
    ner = [check_conll(f"ner.{sp}.conll") for sp in SPLITS]
    assert tuple(map(len, ner)) == SIZES["ner"]
    # a name's tokens must never also be part of an organisation or a place
    org_loc_tokens = {w for s in ORGS + PLACES for w in s.split()}
    assert not (set(FIRST) | set(LAST)) & org_loc_tokens and not set(FIRST) & set(LAST)
    # held-out strings must not occur anywhere in train, not even inside another entity
    train_text = "\n".join(" " + " ".join(t for t, _ in s) + " " for s in ner[0])
    for kind, (_, held) in NAMES.items():
        for h in held:
            assert " %s " % h not in train_text, ("held-out name in train", h)
    return ner

def summary(name, n, labels, extra=""):
    """One line: file name, number of examples, and how often each label occurs."""
    counts = "  ".join("%s=%d" % c for c in sorted(Counter(labels).items()))
    return "  %-20s %4d  %s%s" % (name, n, counts, extra)

def uses_held_out(typ, ent):
    """Does this entity mention use a name that was held out of train?"""
    if typ == "PER":
        return any(w in NAMES["first"][1] + NAMES["last"][1] for w in ent.split())
    return ent in NAMES[typ][1]

def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    # The order of the generators below fixes the random stream: keep it.
    data = {"sentiment": build_classification(
                {lab: sentiment_maker(lab) for lab in ("positive", "negative")},
                SIZES["sentiment"]),
            "topic": build_classification(
                {lab: (lambda t=t: fill(rng.choice(t), TOPIC_VOCAB))
                 for lab, t in TOPIC_TEMPLATES.items()}, SIZES["topic"])}
    for task, splits in data.items():
        for sp, rows in zip(SPLITS, splits):
            write_lines(f"{task}.{sp}.tsv", ["%s\t%s" % row for row in rows])
    seen = set()
    for sp, n in zip(SPLITS, SIZES["ner"]):
        sents = unique_samples(lambda: ner_sentence(sp), n, seen)
        write_lines(f"ner.{sp}.conll",   # sentences separated by one blank line
                    sum([["%s %s" % tt for tt in s] + [""] for s in sents], [])[:-1])
    qa = build_qa(SIZES["qa"])
    for sp, rows in zip(SPLITS, qa):
        write_lines(f"qa.{sp}.tsv", ["%s\t%s" % (p, c) for _, p, c in rows])

    ner = self_check()
    print("wrote %s (self-check passed)" % os.path.normpath(OUT_DIR))
    print("  file                 size  labels (ner: sentences; entity mentions by type)")
    for task, splits in data.items():
        for sp, rows in zip(SPLITS, splits):
            print(summary(f"{task}.{sp}.tsv", len(rows), [lab for lab, _ in rows]))
    for sp, sents in zip(SPLITS, ner):
        ents = [e for s in sents for e in spans(s)]
        new = sum(uses_held_out(t, e) for t, e in ents)
        print(summary(f"ner.{sp}.conll", len(sents), [t for t, _ in ents],
                      "  no-entity=%d  held-out names=%d%%"
                      % (sum(not spans(s) for s in sents), round(100 * new / len(ents)))))
    for sp, rows in zip(SPLITS, qa):
        print(summary(f"qa.{sp}.tsv", len(rows), [task for task, _, _ in rows]))
    texts = [b for task in data for sp in SPLITS for _, b in check_tsv(f"{task}.{sp}.tsv")]
    print("  sentiment/topic texts: max %d chars, %d%% under 100" % (
        max(map(len, texts)), round(100 * sum(len(t) < 100 for t in texts) / len(texts))))

if __name__ == "__main__":
    main()
