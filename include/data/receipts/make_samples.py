"""Render the sample receipts and invoices this project ships (deterministic: same files each run).

    .venv/bin/python include/data/receipts/make_samples.py

Writes, next to this script:
- receipt_grocery.jpg      a shop receipt (JPEG)
- invoice_northwind.png    a supplier invoice with a Bill To block and an item table (PNG)
- receipts_two_pages.pdf   two receipts, one a page (PDF, 2 pages)
- receipt_cafe.tif         a cafe receipt (TIFF)
- receipt_faint_total.jpg  a receipt whose TOTAL is printed faint and blurred (for human review)
- empty.jpg, corrupt.jpg   an empty file and a truncated JPEG (quarantine tests)
- ground_truth.json        the fields printed on each document
The font is DejaVu Sans, shipped by matplotlib (Bitstream Vera / DejaVu licence).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent


def _font_path(bold: bool = False) -> str:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


RECEIPTS = {
    "receipt_grocery": {
        "vendor": "GREENLEAF GROCERS SDN BHD",
        "address": ["NO. 12, JALAN MERANTI 3,", "TAMAN SERI MUDA, 40400 SHAH ALAM"],
        "phone": "03-5510 2233",
        "date": "23/01/2024",
        "time": "14:05",
        "id_label": "Receipt No",
        "invoice_id": "GL-100234",
        "items": [
            ("FRESH MILK 1L", 2, 6.90),
            ("WHOLEMEAL BREAD", 1, 4.50),
            ("EGGS GRADE A 10S", 1, 7.20),
            ("BANANA 1KG", 1, 5.80),
        ],
        "tax_label": "SST 6%",
        "tax_rate": 0.06,
        "paid": 50.00,
    },
    "receipt_cafe": {
        "vendor": "BLUE HERON CAFE LTD",
        "address": ["88 HARBOUR STREET,", "PORT TOWN 10050"],
        "phone": "04-226 7788",
        "date": "2024-02-11",
        "time": "09:42",
        "id_label": "Receipt No",
        "invoice_id": "BH-5521",
        "items": [("FLAT WHITE", 2, 9.50), ("CROISSANT", 2, 6.00), ("FRUIT BOWL", 1, 12.00)],
        "tax_label": "TAX 8%",
        "tax_rate": 0.08,
        "paid": 60.00,
    },
    "pdf_page1": {
        "vendor": "SUNRISE HARDWARE TRADING",
        "address": ["LOT 5, JALAN KILANG 2,", "KAWASAN PERINDUSTRIAN, 81200 JOHOR BAHRU"],
        "phone": "07-355 1200",
        "date": "05/03/2024",
        "time": "11:20",
        "id_label": "Invoice No",
        "invoice_id": "SH-30417",
        "items": [("PVC PIPE 2M", 3, 8.50), ("WALL PLUG 50PCS", 1, 4.90), ("PAINT BRUSH 2IN", 2, 5.50)],
        "tax_label": "SST 6%",
        "tax_rate": 0.06,
        "paid": 50.00,
    },
    "pdf_page2": {
        "vendor": "MAPLE BOOKS & STATIONERY SDN BHD",
        "address": ["NO. 3, JALAN BUNGA RAYA,", "50100 KUALA LUMPUR"],
        "phone": "03-2698 4411",
        "date": "12/03/2024",
        "time": "16:48",
        "id_label": "Receipt No",
        "invoice_id": "MB-77810",
        "items": [
            ("A4 PAPER 500S", 2, 13.90),
            ("GEL PEN BLUE", 5, 2.20),
            ("NOTEBOOK B5", 3, 4.60),
            ("STAPLER", 1, 11.50),
        ],
        "tax_label": "SST 6%",
        "tax_rate": 0.06,
        "paid": 80.00,
    },
    "receipt_faint_total": {
        "vendor": "CORNER MART SDN BHD",
        "address": ["NO. 7, JALAN PINANG,", "47300 PETALING JAYA"],
        "phone": "03-7877 1010",
        "date": "30/04/2024",
        "time": "19:15",
        "id_label": "Receipt No",
        "invoice_id": "CM-41290",
        "items": [("INSTANT NOODLES 5S", 2, 5.40), ("COOKING OIL 2KG", 1, 14.90), ("SUGAR 1KG", 1, 2.85)],
        "tax_label": "SST 6%",
        "tax_rate": 0.06,
        "paid": 40.00,
        "faint_total": True,
    },
}

INVOICE = {
    "vendor": "NORTHWIND TRADING LTD",
    "address": ["21 MILL ROAD, UNIT 4", "BRISTOL BS1 4DJ"],
    "phone": "0117 496 0321",
    "date": "15/03/2024",
    "invoice_id": "INV-2024-0042",
    "receiver": ["CONTOSO PTY LTD", "12 HARBOUR ROAD", "SYDNEY NSW 2000"],
    "items": [
        ("OFFICE CHAIR", 4, 89.00),
        ("DESK LAMP", 6, 24.50),
        ("FILING CABINET", 2, 132.00),
        ("WHITEBOARD 120CM", 1, 75.00),
    ],
    "tax_label": "VAT 20%",
    "tax_rate": 0.20,
}


WORD_GAP = 0.6  # of the font size: printers space words widely, and the OCR keeps the spaces then


def _textlength(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    words = text.split(" ")
    gap = font.size * WORD_GAP
    return sum(draw.textlength(w, font=font) for w in words) + gap * (len(words) - 1)


def _text(draw: ImageDraw.ImageDraw, xy, text: str, font, fill) -> None:
    x, y = xy
    for word in text.split(" "):
        draw.text((x, y), word, font=font, fill=fill)
        x += draw.textlength(word, font=font) + font.size * WORD_GAP


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _totals(spec: dict) -> tuple[float, float, float]:
    subtotal = round(sum(q * p for _, q, p in spec["items"]), 2)
    tax = round(subtotal * spec["tax_rate"] + 1e-9, 2)
    return subtotal, tax, round(subtotal + tax, 2)


def render_receipt(spec: dict) -> tuple[Image.Image, dict]:
    width, margin, size = 640, 28, 22
    font = ImageFont.truetype(_font_path(), size)
    bold = ImageFont.truetype(_font_path(True), size + 4)
    lines: list[tuple] = []  # (kind, left text, right text, font, faint)
    lines.append(("center", spec["vendor"], None, bold, False))
    for a in spec["address"]:
        lines.append(("center", a, None, font, False))
    lines.append(("center", f"Tel: {spec['phone']}", None, font, False))
    lines.append(("gap",))
    lines.append(("left", f"{spec['id_label']}: {spec['invoice_id']}", None, font, False))
    lines.append(("left", f"Date: {spec['date']}  {spec['time']}", None, font, False))
    lines.append(("rule",))
    lines.append(("cols", ["ITEM", "QTY", "PRICE", "AMOUNT"], font))
    lines.append(("rule",))
    for name, qty, price in spec["items"]:
        lines.append(("cols", [name, str(qty), _money(price), _money(qty * price)], font))
    lines.append(("rule",))
    subtotal, tax, total = _totals(spec)
    lines.append(("lr", "SUBTOTAL", _money(subtotal), font, False))
    lines.append(("lr", spec["tax_label"], _money(tax), font, False))
    lines.append(("lr", "TOTAL", _money(total), bold, bool(spec.get("faint_total"))))
    lines.append(("lr", "CASH", _money(spec["paid"]), font, False))
    lines.append(("lr", "CHANGE", _money(spec["paid"] - total), font, False))
    lines.append(("gap",))
    lines.append(("center", "THANK YOU, PLEASE COME AGAIN", None, font, False))
    height = 60 + sum(18 if ln[0] in ("gap", "rule") else size + 14 for ln in lines)
    img = Image.new("RGB", (width, height), (250, 249, 245))
    draw = ImageDraw.Draw(img)
    y = 30
    faint_box = None
    for ln in lines:
        kind = ln[0]
        if kind == "gap":
            y += 18
            continue
        if kind == "rule":
            draw.line([(margin, y + 8), (width - margin, y + 8)], fill=(90, 90, 90), width=1)
            y += 18
            continue
        if kind == "cols":
            cells, f = ln[1], ln[2]
            xs = [margin, 340, 480, width - margin]
            for k, cell in enumerate(cells):
                if k == 0:
                    _text(draw, (xs[0], y), cell, font=f, fill=(20, 20, 20))
                else:
                    w = _textlength(draw, cell, font=f)
                    right = xs[k] + (30 if k == 1 else 0) if k < 3 else xs[3]
                    _text(draw, (right - w, y), cell, font=f, fill=(20, 20, 20))
            y += size + 14
            continue
        _, left, right, f, faint = ln
        color = (110, 110, 108) if faint else (20, 20, 20)
        if kind == "center":
            w = _textlength(draw, left, font=f)
            _text(draw, ((width - w) / 2, y), left, font=f, fill=color)
        elif kind == "left":
            _text(draw, (margin, y), left, font=f, fill=color)
        else:
            _text(draw, (margin, y), left, font=f, fill=(20, 20, 20))  # the label stays legible
            w = _textlength(draw, right, font=f)
            _text(draw, (width - margin - w, y), right, font=f, fill=color)
            if faint:
                faint_box = (width // 2, y - 4, width - margin + 4, y + size + 10)
        y += size + 14
    if faint_box:
        # a worn print: blurred, smeared to a quarter of the resolution, speckled (seeded noise)
        region = img.crop(faint_box).filter(ImageFilter.GaussianBlur(1.2))
        w0, h0 = region.size
        region = region.resize((w0 // 4, h0 // 4), Image.BILINEAR).resize((w0, h0), Image.BILINEAR)
        arr = np.asarray(region).astype(float) + np.random.default_rng(7).normal(0, 25, (h0, w0, 3))
        img.paste(Image.fromarray(arr.clip(0, 255).astype("uint8")), faint_box[:2])
    truth = {
        "vendor": spec["vendor"],
        "address": " ".join(spec["address"]),
        "date": spec["date"],
        "invoice_id": spec["invoice_id"],
        "items": [
            {"item": n, "quantity": q, "unit_price": f"{p:.2f}", "price": f"{q * p:.2f}"}
            for n, q, p in spec["items"]
        ],
        "subtotal": f"{subtotal:.2f}",
        "tax": f"{tax:.2f}",
        "total": f"{total:.2f}",
    }
    if spec.get("faint_total"):
        truth["faint_total"] = True
    return img, truth


def render_invoice(spec: dict) -> tuple[Image.Image, dict]:
    width, height, margin, size = 1000, 1300, 50, 24
    font = ImageFont.truetype(_font_path(), size)
    bold = ImageFont.truetype(_font_path(True), size + 8)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    ink = (15, 15, 25)
    y = 50
    _text(draw, (margin, y), spec["vendor"], font=bold, fill=ink)
    _text(draw, (700, y), "INVOICE", font=bold, fill=ink)
    y += 54
    for a in spec["address"]:
        _text(draw, (margin, y), a, font=font, fill=ink)
        y += size + 12
    _text(draw, (margin, y), f"Tel: {spec['phone']}", font=font, fill=ink)
    y += 70
    top = y
    _text(draw, (margin, y), "Bill To:", font=font, fill=ink)
    for r in spec["receiver"]:
        y += size + 12
        _text(draw, (margin, y), r, font=font, fill=ink)
    _text(draw, (560, top), f"Invoice No: {spec['invoice_id']}", font=font, fill=ink)
    _text(draw, (560, top + size + 12), f"Date: {spec['date']}", font=font, fill=ink)
    y += 80
    cols = [margin, 560, 730, width - margin]
    draw.line([(margin, y - 10), (width - margin, y - 10)], fill=ink, width=2)
    for k, head in enumerate(["Description", "Qty", "Unit Price", "Amount"]):
        if k == 0:
            _text(draw, (cols[0], y), head, font=font, fill=ink)
        else:
            w = _textlength(draw, head, font=font)
            _text(
                draw,
                ((cols[k] if k < 3 else cols[3]) - w + (60 if k == 1 else 0) + (100 if k == 2 else 0), y),
                head,
                font=font,
                fill=ink,
            )
    y += size + 20
    draw.line([(margin, y - 8), (width - margin, y - 8)], fill=ink, width=1)
    for name, qty, price in spec["items"]:
        cells = [name, str(qty), _money(price), _money(qty * price)]
        for k, cell in enumerate(cells):
            if k == 0:
                _text(draw, (cols[0], y), cell, font=font, fill=ink)
            else:
                w = _textlength(draw, cell, font=font)
                _text(
                    draw,
                    ((cols[k] if k < 3 else cols[3]) - w + (60 if k == 1 else 0) + (100 if k == 2 else 0), y),
                    cell,
                    font=font,
                    fill=ink,
                )
        y += size + 22
    draw.line([(margin, y), (width - margin, y)], fill=ink, width=1)
    y += 24
    subtotal, tax, total = _totals(spec)
    for label, value, f in (
        ("Subtotal:", subtotal, font),
        (f"{spec['tax_label']}:", tax, font),
        ("Total Due:", total, bold),
    ):
        _text(draw, (560, y), label, font=f, fill=ink)
        text = _money(value)
        w = _textlength(draw, text, font=f)
        _text(draw, (width - margin - w, y), text, font=f, fill=ink)
        y += size + 22
    y += 40
    _text(draw, (margin, y), "Payment terms: 30 days. Thank you for your business.", font=font, fill=ink)
    truth = {
        "vendor": spec["vendor"],
        "address": " ".join(spec["address"]),
        "date": spec["date"],
        "invoice_id": spec["invoice_id"],
        "receiver_name": spec["receiver"][0],
        "receiver_address": " ".join(spec["receiver"][1:]),
        "items": [
            {"item": n, "quantity": q, "unit_price": f"{p:.2f}", "price": f"{q * p:.2f}"}
            for n, q, p in spec["items"]
        ],
        "subtotal": f"{subtotal:.2f}",
        "tax": f"{tax:.2f}",
        "total": f"{total:.2f}",
    }
    return img, truth


def main() -> None:
    truth: dict[str, dict] = {}

    img, t = render_receipt(RECEIPTS["receipt_grocery"])
    img.save(HERE / "receipt_grocery.jpg", "JPEG", quality=80, optimize=True)
    truth["receipt_grocery.jpg"] = {"format": "JPEG", "pages": 1, "documents": [t]}

    img, t = render_invoice(INVOICE)
    img.convert("L").save(HERE / "invoice_northwind.png", "PNG", optimize=True)
    truth["invoice_northwind.png"] = {"format": "PNG", "pages": 1, "documents": [t]}

    p1, t1 = render_receipt(RECEIPTS["pdf_page1"])
    p2, t2 = render_receipt(RECEIPTS["pdf_page2"])
    p1.convert("L").save(
        HERE / "receipts_two_pages.pdf", "PDF", resolution=150, save_all=True, append_images=[p2.convert("L")]
    )
    _strip_pdf_dates(HERE / "receipts_two_pages.pdf")
    truth["receipts_two_pages.pdf"] = {"format": "PDF", "pages": 2, "documents": [t1, t2]}

    img, t = render_receipt(RECEIPTS["receipt_cafe"])
    img.convert("L").save(HERE / "receipt_cafe.tif", "TIFF", compression="tiff_deflate")
    truth["receipt_cafe.tif"] = {"format": "TIFF", "pages": 1, "documents": [t]}

    img, t = render_receipt(RECEIPTS["receipt_faint_total"])
    img.save(HERE / "receipt_faint_total.jpg", "JPEG", quality=80, optimize=True)
    truth["receipt_faint_total.jpg"] = {"format": "JPEG", "pages": 1, "documents": [t]}

    (HERE / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    render_receipt(RECEIPTS["receipt_grocery"])[0].save(buf, "JPEG", quality=80)
    (HERE / "corrupt.jpg").write_bytes(buf.getvalue()[:600])  # a JPEG cut off in its header
    truth["empty.jpg"] = {"error": "BadDocumentException"}
    truth["corrupt.jpg"] = {"error": "BadDocumentException"}

    (HERE / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def _strip_pdf_dates(path: Path) -> None:
    """PIL writes the creation time into the PDF; blank it so the file is the same every run."""
    import re

    data = path.read_bytes()
    data = re.sub(
        rb"/(CreationDate|ModDate)\s*\(D:[^)]*\)", lambda m: b"/" + m.group(1) + b" (D:20240101000000Z)", data
    )
    path.write_bytes(data)


if __name__ == "__main__":
    main()
