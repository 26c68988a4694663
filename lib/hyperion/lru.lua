-- Bounded key -> value map that evicts the least recently used key: the memory cap of every keyed table.
--
-- Attackers choose source addresses, so any table keyed by them must be bounded; the LRU order also lets
-- callers sweep idle keys from the oldest end and stop at the first fresh one.
local M = {}

M.DEFAULT_CAP = 10000  -- keys kept when the caller names no cap

local LRU = {}
LRU.__index = LRU

-- cap: maximum keys; on_evict(key, value) is called for keys pushed out by the cap (not for delete()).
function M.new(cap, on_evict)
	cap = cap or M.DEFAULT_CAP
	if type(cap) ~= "number" or cap < 1 or cap % 1 ~= 0 then
		error("lru.new: cap must be a positive integer, got " .. tostring(cap), 2)
	end
	-- Sentinel node: head.next is the most recent, head.prev the oldest.
	local head = {}
	head.next, head.prev = head, head
	return setmetatable({ cap = cap, n = 0, map = {}, head = head, on_evict = on_evict }, LRU)
end

local function unlink(node)
	node.prev.next, node.next.prev = node.next, node.prev
end

local function push_front(self, node)
	local h = self.head
	node.next, node.prev = h.next, h
	h.next.prev = node
	h.next = node
end

-- Value for key, marking it recently used.
function LRU:get(key)
	local node = self.map[key]
	if not node then return nil end
	unlink(node)
	push_front(self, node)
	return node.value
end

-- Value for key without touching its position.
function LRU:peek(key)
	local node = self.map[key]
	return node and node.value
end

-- Insert or replace; returns the evicted key and value when the cap pushed one out.
function LRU:set(key, value)
	if key == nil then error("lru:set: nil key", 2) end
	local node = self.map[key]
	if node then
		node.value = value
		unlink(node)
		push_front(self, node)
		return nil
	end
	node = { key = key, value = value }
	self.map[key] = node
	push_front(self, node)
	self.n = self.n + 1
	if self.n > self.cap then
		local old = self.head.prev
		unlink(old)
		self.map[old.key] = nil
		self.n = self.n - 1
		if self.on_evict then self.on_evict(old.key, old.value) end
		return old.key, old.value
	end
	return nil
end

function LRU:delete(key)
	local node = self.map[key]
	if not node then return nil end
	unlink(node)
	self.map[key] = nil
	self.n = self.n - 1
	return node.value
end

function LRU:size()
	return self.n
end

-- Calls fn(key, value) from the oldest key to the newest; fn may delete the key it is given, and
-- returning true stops the walk (sweeps stop at the first key that is still fresh).
function LRU:each_oldest(fn)
	local node = self.head.prev
	while node ~= self.head do
		local prev = node.prev
		if fn(node.key, node.value) then return end
		node = prev
	end
end

-- Iterator over key, value from the most recent to the oldest (do not modify while iterating).
function LRU:pairs()
	local node = self.head
	return function()
		node = node.next
		if node == self.head then return nil end
		return node.key, node.value
	end
end

return M
