-- CreateTable
CREATE TABLE "purchase_order" (
    "id" UUID NOT NULL,
    "reference" TEXT NOT NULL,
    "total_cents" INTEGER NOT NULL,
    "note" TEXT,
    "idempotency_key" TEXT,
    "request_hash" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "purchase_order_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "purchase_order_reference_key" ON "purchase_order"("reference");

-- CreateIndex
CREATE UNIQUE INDEX "purchase_order_idempotency_key_key" ON "purchase_order"("idempotency_key");
