"""Amazon Textract on the twin: real OCR (RapidOCR), forms, tables, queries and expense analysis,
synchronous and asynchronous. The OCR models load on the first document, not at start-up."""

from __future__ import annotations

from ...core.service import TwinService
from . import documents, engine
from .jobs import JobStore, _check_features


class TextractService(TwinService):
    model = "textract"

    def reset(self) -> None:
        self.store = JobStore(self.twin)

    def state(self) -> dict:
        return self.store.state()

    def shutdown(self) -> None:
        engine.shutdown_pool()

    # ---- synchronous ----------------------------------------------------------------------
    def _read(self, params: dict):
        doc = documents.load(self.twin, params.get("Document"))
        pages = engine.read_document(doc)
        return doc, pages

    def detect_document_text(self, ctx, params):
        doc, pages = self._read(params)
        return {
            "DocumentMetadata": {"Pages": doc.pages},
            "Blocks": engine.text_blocks(pages, engine.seed_of(doc)),
            "DetectDocumentTextModelVersion": engine.MODEL_VERSION,
        }

    def analyze_document(self, ctx, params):
        _check_features(params)
        doc, pages = self._read(params)
        features = params.get("FeatureTypes") or []
        queries = (params.get("QueriesConfig") or {}).get("Queries")
        return {
            "DocumentMetadata": {"Pages": doc.pages},
            "Blocks": engine.analysis_blocks(pages, engine.seed_of(doc), features, queries, doc),
            "AnalyzeDocumentModelVersion": engine.MODEL_VERSION,
        }

    def analyze_expense(self, ctx, params):
        doc, pages = self._read(params)
        return {
            "DocumentMetadata": {"Pages": doc.pages},
            "ExpenseDocuments": engine.expense_documents(pages, engine.seed_of(doc)),
        }

    # ---- asynchronous ---------------------------------------------------------------------
    def start_document_text_detection(self, ctx, params):
        return {"JobId": self.store.start("text", params)}

    def start_document_analysis(self, ctx, params):
        return {"JobId": self.store.start("analysis", params)}

    def start_expense_analysis(self, ctx, params):
        return {"JobId": self.store.start("expense", params)}

    def _get(self, kind: str, params: dict) -> dict:
        job = self.store.get(params.get("JobId"), kind)
        return self.store.result(job.job_id, params.get("MaxResults"), params.get("NextToken"))

    def get_document_text_detection(self, ctx, params):
        return self._get("text", params)

    def get_document_analysis(self, ctx, params):
        return self._get("analysis", params)

    def get_expense_analysis(self, ctx, params):
        return self._get("expense", params)
