#include "scheduler/cpu_share.h"

#include <algorithm>

namespace mmserve::scheduler {

CpuShare::CpuShare(int32_t total_threads) : total_(std::max(1, total_threads)) {}

std::unique_ptr<CpuShare::Tenant> CpuShare::tenant(int32_t threads_beside_others) {
  return std::make_unique<Tenant>(shared_from_this(), threads_beside_others);
}

CpuShare::Tenant::Tenant(std::shared_ptr<CpuShare> share, int32_t threads_beside_others)
    : owner_(std::move(share)), share_(std::clamp(threads_beside_others, 1, owner_->total_)) {}

CpuShare::Tenant::~Tenant() {
  set_busy(false);
}

void CpuShare::Tenant::set_busy(bool busy) {
  if (busy_.exchange(busy) != busy) {
    owner_->busy_tenants_.fetch_add(busy ? 1 : -1);
  }
}

int32_t CpuShare::Tenant::threads() const {
  const int32_t others = owner_->busy_tenants_.load() - (busy_.load() ? 1 : 0);
  return others > 0 ? share_ : owner_->total_;
}

}  // namespace mmserve::scheduler
