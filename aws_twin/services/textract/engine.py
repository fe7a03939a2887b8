"""Textract's work without the wire format: OCR a document (with a small cache by content hash)
and build the results of each operation from the OCR pages."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import multiprocessing
import os
import threading
from collections import OrderedDict

from . import ocr, signatures
from .blocks import BlockBuilder
from .documents import Document
from .expense import analyze_page, expense_document

log = logging.getLogger("aws_twin.textract")

MODEL_VERSION = "1.0"
_CACHE: OrderedDict[str, list[ocr.OcrPage]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64

_POOL: concurrent.futures.ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _workers() -> int:
    """Worker processes for multi-page OCR (AWS_TWIN_TEXTRACT_WORKERS; 0: OCR in the job thread)."""
    try:
        return max(0, int(os.environ.get("AWS_TWIN_TEXTRACT_WORKERS", "0")))
    except ValueError:
        return 0


def _pool() -> concurrent.futures.ProcessPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            ctx = multiprocessing.get_context("spawn")
            _POOL = concurrent.futures.ProcessPoolExecutor(max_workers=_workers(), mp_context=ctx)
        return _POOL


def shutdown_pool() -> None:
    global _POOL, _THREADS
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
            _POOL = None
        if _THREADS is not None:
            _THREADS.shutdown(wait=False, cancel_futures=True)
            _THREADS = None


_THREADS: concurrent.futures.ThreadPoolExecutor | None = None


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that read the pages of one document at once, one per OCR engine."""
    global _THREADS
    with _POOL_LOCK:
        if _THREADS is None:
            _THREADS = concurrent.futures.ThreadPoolExecutor(ocr.ENGINES, thread_name_prefix="textract-ocr")
        return _THREADS


def _ocr_in_worker(image) -> dict:
    return ocr.read_page(image).to_dict()


def _as_page(result) -> ocr.OcrPage:
    return result if isinstance(result, ocr.OcrPage) else ocr.OcrPage.from_dict(result)


def read_document(doc: Document, on_error=None) -> list[ocr.OcrPage | None]:
    """OCR every page of a document. A page that fails to render or read is None when
    ``on_error(page_number, exc)`` is given (partial success), else the error propagates."""
    key = hashlib.sha256(doc.data).hexdigest()
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return list(_CACHE[key])
    pages: list[ocr.OcrPage | None] = []
    use_pool = _workers() > 0 and doc.pages > 1
    use_threads = not use_pool and ocr.ENGINES > 1 and doc.pages > 1
    in_flight = 2 * max(_workers(), ocr.ENGINES)  # rendered pages waiting, at most
    futures = []
    iterator = doc.render()
    number = 0
    while True:
        number += 1
        try:
            image = next(iterator)
        except StopIteration:
            break
        except Exception as exc:
            if on_error is None:
                raise
            on_error(number, exc)
            pages.append(None)
            break  # a document that fails to render stops there
        if use_pool or use_threads:
            if len(futures) >= in_flight:
                concurrent.futures.wait([futures[len(futures) - in_flight][1]])
            if use_pool:
                futures.append((number, _pool().submit(_ocr_in_worker, image)))
            else:
                futures.append((number, _threads().submit(ocr.read_page, image)))
            pages.append(None)
            continue
        try:
            pages.append(ocr.read_page(image))
        except Exception as exc:
            if on_error is None:
                raise
            on_error(number, exc)
            pages.append(None)
    for number, future in futures:
        try:
            pages[number - 1] = _as_page(future.result())
        except Exception as exc:
            if on_error is None:
                raise
            on_error(number, exc)
    if all(p is not None for p in pages):
        with _CACHE_LOCK:
            _CACHE[key] = list(pages)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return pages


def seed_of(doc: Document) -> str:
    return hashlib.sha256(doc.data).hexdigest()[:32]


def text_blocks(pages: list[ocr.OcrPage | None], seed: str) -> list[dict]:
    blocks = []
    for number, page in enumerate(pages, start=1):
        if page is not None:
            blocks.extend(BlockBuilder(page, number, seed).text_blocks())
    return blocks


def analysis_blocks(
    pages: list[ocr.OcrPage | None],
    seed: str,
    features: list[str],
    queries: list[dict] | None,
    doc: Document | None = None,
) -> list[dict]:
    """The blocks of AnalyzeDocument. SIGNATURES needs the page images: the document is rendered
    again for it (only then; the OCR cache keeps no images)."""
    blocks = []
    images = doc.render() if "SIGNATURES" in features and doc is not None else None
    for number, page in enumerate(pages, start=1):
        image = None
        if images is not None:
            try:
                image = next(images, None)
            except Exception:
                if page is not None:  # a page the OCR read gets no "no signatures" by default
                    raise
                images = None  # the page that failed to render for the OCR: rendering stops there
        if page is None:
            continue
        builder = BlockBuilder(page, number, seed)
        builder.text_blocks()
        if "FORMS" in features:
            builder.forms()
        if "TABLES" in features:
            builder.tables()
        if "LAYOUT" in features:
            builder.layout()
        if "QUERIES" in features and queries:
            extra = {f.type: f.value for f in analyze_page(page).summary}
            builder.queries(queries, extra)
        if image is not None:
            builder.signatures(signatures.detect(image, page))
        blocks.extend(builder.blocks)
    return blocks


def expense_documents(pages: list[ocr.OcrPage | None], seed: str) -> list[dict]:
    docs = []
    for number, page in enumerate(pages, start=1):
        if page is None:
            continue
        blocks = BlockBuilder(page, number, seed).text_blocks()
        docs.append(expense_document(page, number, len(docs) + 1, blocks, seed))
    return docs
