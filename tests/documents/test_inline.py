from xformer_cli.documents.inline import Marked, MarkedBuilder, Tag, atom_char, atom_index


def build(parts):
    builder = MarkedBuilder()
    for part in parts:
        if part == "/":
            builder.close()
        elif part.startswith("<"):
            builder.open(part)
        elif part.startswith("@"):
            builder.atom(part)
        else:
            builder.text(part)
    return builder.build()


def write(marked):
    names = {"open": lambda t: t.kind, "close": lambda t: "</>", "text": str, "atom": lambda a: f"[{a}]"}
    return "".join(names[kind](value) for kind, value in marked.events())


def test_a_built_block_comes_back_in_document_order():
    parts = ["Ich habe ", "<b>", "großen ", "<i>", "Hunger", "/", "/", " und ", "@%s", "<e>", "/", "."]
    marked = build(parts)
    assert marked.plain == "Ich habe großen Hunger und ."
    assert marked.tags == (Tag(9, 22, "<b>"), Tag(16, 22, "<i>"), Tag(28, 28, "<e>"))
    assert write(marked) == "Ich habe <b>großen <i>Hunger</></> und [@%s]<e></>."


def test_atoms_are_private_use_characters():
    assert atom_index(atom_char(3)) == 3 and atom_index("a") is None
    assert build(["@x", "a", "@y"]).text == atom_char(0) + "a" + atom_char(1)


def test_a_tag_left_open_closes_at_the_end():
    marked = build(["a ", "<b>", "b"])
    assert marked.tags == (Tag(2, 3, "<b>"),) and write(marked) == "a <b>b</>"


def test_adjacent_and_nested_tags_with_the_same_edges():
    marked = Marked("abc", (Tag(0, 3, "<p>"), Tag(0, 1, "<x>"), Tag(1, 3, "<y>")))
    assert write(marked) == "<p><x>a</><y>bc</></>"
